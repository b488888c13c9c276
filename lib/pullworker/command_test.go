package pullworker_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/pullworker"
)

type grammar struct {
	Worker pullworker.Command `cmd:""`
}

// TestCommandBadInput: bad flags and token files are refused with exit
// status 2 and a message naming what is wrong, never showing the token.
func TestCommandBadInput(t *testing.T) {
	dir := t.TempDir()
	secret := "pkgbulk-token-SECRETSECRETSECRET"
	good := filepath.Join(dir, "good.token")
	os.WriteFile(good, []byte(secret+"\n"), 0o600)
	open := filepath.Join(dir, "open.token")
	os.WriteFile(open, []byte(secret+"\n"), 0o644)
	os.Chmod(open, 0o644)
	tree := t.TempDir()
	base := []string{"worker", "--server", "https://127.0.0.1:1", "--pkgsrc", tree}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no server", []string{"worker", "--token-file", good, "--pkgsrc", tree}, "--server"},
		{"no token file", append(base, "--token-file", filepath.Join(dir, "missing")), "missing"},
		{"token readable by others", append(base, "--token-file", open), "open.token"},
		{"plain http", []string{"worker", "--server", "http://127.0.0.1:1", "--token-file", good, "--pkgsrc", tree}, "https"},
		{"bad fingerprint", append(base, "--token-file", good, "--fingerprint", "sha256:abcd"), "fingerprint"},
		{"a store", append(base, "--token-file", good, "--store", "file:///tmp/x"), "no store"},
		{"no tree", []string{"worker", "--server", "https://127.0.0.1:1", "--token-file", good}, "pkgsrc"},
		{"bad label", append(base, "--token-file", good, "--label", "novalue"), "KEY=VALUE"},
		{"bad no-way pattern", append(base, "--token-file", good, "--never", "foo-[0-9"), "--never"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			code := cli.Run(ctx, "pkgrun", "", &grammar{}, c.args, &cli.Globals{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr: %s", code, errb.String())
			}
			if !strings.Contains(errb.String(), c.want) {
				t.Errorf("stderr %q does not say %q", errb.String(), c.want)
			}
			if strings.Contains(out.String()+errb.String(), "SECRET") {
				t.Errorf("the token was printed: %s", errb.String())
			}
		})
	}
}
