package dag

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

var codeBlock = regexp.MustCompile("(?s)```(sql|sh)\n(.*?)```")

// TestSchemaDocQueries runs every example of docs/schema.md with the real
// sqlite3 against a database built from smallScan, with some pkgsched rows
// added, and checks each gives output without error.
func TestSchemaDocQueries(t *testing.T) {
	sqlite3 := testenv.Program(t, "sqlite3")
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "schema.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "bulk.db")
	g, _, _ := writeSmall(t, path, nil)
	d := openDB(t, path)
	_, err = d.Exec(`
		INSERT INTO build_state (pkg_id, state, detail, worker) SELECT id, 'done', '', 'local/1' FROM packages WHERE initial_state = 'open';
		UPDATE build_state SET state = 'failed', detail = 'build' WHERE pkg_id = (SELECT id FROM packages WHERE pkgname = 'py311-mod-1');
		INSERT INTO build_state (pkg_id, state, detail) SELECT id, initial_state, initial_detail FROM packages WHERE initial_state <> 'open';
		INSERT INTO history VALUES ('x/lib', 'lib-2.0', 1000, 'done', 120000, 200000), ('x/lib', 'lib-2.1nb3', 2000, 'done', 100000, 150000),
			('x/base', 'base-1.0', 2000, 'done', 5000, 4000);`)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()

	blocks := codeBlock.FindAllSubmatch(doc, -1)
	if len(blocks) < 10 {
		t.Fatalf("only %d example blocks in docs/schema.md", len(blocks))
	}
	for _, b := range blocks {
		lang, code := string(b[1]), string(b[2])
		name := strings.SplitN(strings.TrimSpace(code), "\n", 2)[0]
		t.Run(name, func(t *testing.T) {
			var cmd *exec.Cmd
			if lang == "sql" {
				cmd = exec.Command(sqlite3, "-bail", path)
				cmd.Stdin = strings.NewReader(code)
			} else {
				cmd = exec.Command("sh", "-e", "-c", code)
				cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(sqlite3)+":"+os.Getenv("PATH"))
			}
			cmd.Dir = dir
			var out, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &stderr
			if err := cmd.Run(); err != nil || stderr.Len() > 0 {
				t.Fatalf("%v: %s\n%s", err, stderr.String(), code)
			}
			if out.Len() == 0 && !strings.Contains(code, "> presolve") {
				t.Errorf("no output from:\n%s", code)
			}
		})
	}
	// The presolve example reproduces pbulk-resolve's output exactly.
	got, err := os.ReadFile(filepath.Join(dir, "presolve"))
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	g.WritePresolve(&want, nil)
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("presolve from the database differs:\n%s", got)
	}
}
