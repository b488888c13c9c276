package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/report"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedcmd"
)

// grammar holds only the report command, so these tests do not depend on
// the rest of pkgsched's grammar.
type grammar struct {
	Report schedcmd.ReportCmd `cmd:"" help:"Write pbulk's report files."`
}

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), "pkgsched", "test", &grammar{}, args, &cli.Globals{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func TestReportCommand(t *testing.T) {
	dbPath := report.FixtureDB(t)
	root := t.TempDir()
	storeDir := filepath.Join(root, "store")
	report.PutLogs(t, storeDir, "bulklog/libfoo-1.0/build.log", "bulklog/libfoo-1.0/work.log")
	out := filepath.Join(root, "meta")
	code, _, stderr := run(t, "report", "--db", dbPath, "--output", out, "--store", "file://"+storeDir,
		"--base-url", "https://bulk.example.org/reports/", "--platform", "NetBSD 10.0/x86_64", "--compiler", "gcc", "--utc")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "report of 15 packages (4 done, 5 failed") {
		t.Errorf("summary on stderr: %q", stderr)
	}
	for _, f := range report.Files {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	txt, err := os.ReadFile(filepath.Join(out, "report.txt"))
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "report.txt.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(txt, golden) {
		t.Errorf("report.txt from the command differs from the golden file:\n%s", txt)
	}
	page, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<a href="../store/bulklog/libfoo-1.0/build.log">build</a>`, `<a href="../store/bulklog/libfoo-1.0/work.log">work</a>`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report.html lacks %s", want)
		}
	}
}

func TestReportCommandJSON(t *testing.T) {
	dbPath := report.FixtureDB(t)
	out := filepath.Join(t.TempDir(), "meta")
	code, stdout, stderr := run(t, "report", "--db", dbPath, "-o", out, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got struct {
		Dir    string
		Files  []string
		Counts map[string]int
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}
	if got.Dir != out || len(got.Files) != len(report.Files) || got.Counts["total"] != 15 || got.Counts["skew"] != 1 || got.Counts["failed"] != 5 {
		t.Errorf("JSON output %+v", got)
	}
}

func TestReportCommandErrors(t *testing.T) {
	dbPath := report.FixtureDB(t)
	dir := t.TempDir()
	notDB := filepath.Join(dir, "not.db")
	if err := os.WriteFile(notDB, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing database", []string{"report", "--db", filepath.Join(dir, "none.db"), "--output", dir}, "none.db"},
		{"not a database", []string{"report", "--db", notDB, "--output", dir}, "not.db"},
		{"no output", []string{"report", "--db", dbPath}, "--output"},
		{"bad store", []string{"report", "--db", dbPath, "--output", dir, "--store", "ftp://x/y"}, "ftp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and a message naming %s", code, stderr, tt.want)
			}
		})
	}
	// Nothing was written by the failed runs.
	if _, err := os.Stat(filepath.Join(dir, "report")); err == nil {
		t.Error("a failed run wrote report")
	}
}

func TestReportHelp(t *testing.T) {
	code, out, _ := run(t, "report", "--help")
	if code != 0 || !strings.Contains(out, "PKGBULK_STATUS") || !strings.Contains(out, "Exit codes") {
		t.Errorf("help (exit %d):\n%s", code, out)
	}
}
