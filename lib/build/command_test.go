package build

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/job"
)

func runCommand(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	g := &cli.Globals{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb}
	code := cli.Run(context.Background(), "pkgrun", Description, &Command{}, args, g)
	return code, out.String(), errb.String()
}

func TestCommand(t *testing.T) {
	e := newEnv(t)
	doc := filepath.Join(t.TempDir(), "job.json")
	settings := job.Settings{Pkgsrc: e.tree, Store: "file://" + e.storeDir, Make: e.make, WorkRoot: e.work, MaxTime: "5m"}
	b, _ := json.Marshal(settings)
	os.WriteFile(doc, b, 0o644)
	badDoc := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(badDoc, []byte(`{"pkgsrc": "/x", "colour": "red"}`), 0o644)

	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		status job.Status
		stderr string
		usage  bool // a parse error: lib/cli prints the usage on stdout
	}{
		{name: "done", stdin: helloJob, args: []string{"--job", doc}, code: 0, status: job.StatusDone},
		{name: "up to date", stdin: helloJob, args: []string{"--job", doc}, code: 0, status: job.StatusUpToDate},
		{name: "flags override the document", stdin: helloJob, args: []string{"--job", doc, "--force"}, code: 0, status: job.StatusDone},
		{name: "failed", stdin: brokenJob, args: []string{"--job", doc}, code: 1, status: job.StatusFailed, stderr: "make all failed"},
		{name: "skew", stdin: "PKGNAME=hello-2.0\nPKG_LOCATION=fixture/hello\n", args: []string{"--job", doc}, code: 1, status: job.StatusSkew},
		{name: "flags only", stdin: brokenJob, args: []string{"--pkgsrc", e.tree, "--store", e.storeDir, "--make", e.make,
			"--work-root", e.work, "--max-time", "1m", "--no-output-time", "30s", "--env", "A=1,2"}, code: 1, status: job.StatusFailed},
		{name: "bad record", stdin: "PKG_LOCATION=x/y\n", args: []string{"--job", doc}, code: 2, stderr: "stdin:1"},
		{name: "unknown setting", stdin: helloJob, args: []string{"--job", badDoc}, code: 2, stderr: "colour"},
		{name: "no store", stdin: helloJob, args: []string{"--pkgsrc", e.tree}, code: 2, stderr: "no store"},
		{name: "bad duration", stdin: helloJob, args: []string{"--job", doc, "--max-time", "soon"}, code: 2, usage: true},
		{name: "bad env", stdin: helloJob, args: []string{"--job", doc, "--env", "novalue"}, code: 2, stderr: "KEY=VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, out, errs := runCommand(t, tt.stdin, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, errs)
			}
			if !strings.Contains(errs, tt.stderr) {
				t.Errorf("stderr %q lacks %q", errs, tt.stderr)
			}
			if tt.status == "" {
				if out != "" && !tt.usage {
					t.Errorf("stdout %q, want nothing when the job could not run", out)
				}
				return
			}
			res, err := job.DecodeResult([]byte(out))
			if err != nil {
				t.Fatalf("stdout %q: %v", out, err)
			}
			if res.Status != tt.status {
				t.Errorf("status %s, want %s (%s)", res.Status, tt.status, res.Message)
			}
			if el := time.Since(start); el > time.Minute {
				t.Errorf("took %v", el)
			}
		})
	}
}
