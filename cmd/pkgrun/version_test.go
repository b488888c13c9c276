package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/build"
	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/version"
)

// TestVersion: pkgrun version --json prints what executors check at
// connect (lib/version), and the text form names the protocol.
func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want func(string) bool
	}{
		{[]string{"version", "--json"}, func(s string) bool {
			i, err := version.Parse([]byte(s))
			return err == nil && i == version.Current() && i.Protocol == job.ProtocolVersion
		}},
		{[]string{"version"}, func(s string) bool { return strings.Contains(s, "job protocol 1") }},
	} {
		var out, errb bytes.Buffer
		code := cli.Run(context.Background(), "pkgrun", build.Description, &build.Tool{}, tc.args, &cli.Globals{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
		if code != 0 || !tc.want(out.String()) {
			t.Errorf("pkgrun %v: exit %d, stdout %q, stderr %q", tc.args, code, out.String(), errb.String())
		}
	}
}
