package process_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor/pullexec"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/provider"
	"github.com/pkgbulk/pkgbulk/lib/provider/process"
	"github.com/pkgbulk/pkgbulk/lib/provider/providertest"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// TestConformance runs the provider suite with real `pkgrun worker`
// processes that register with a real pull server.
func TestConformance(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pkgrun")
	build := exec.Command("go", "build", "-o", bin, "./cmd/pkgrun")
	build.Dir = testenv.RepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dbPath := filepath.Join(dir, "bulk.db")
	d, err := db.Create(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	store := filepath.Join(dir, "store")
	os.Mkdir(store, 0o755)
	px, err := pullexec.Open(context.Background(), "pull://127.0.0.1:0?poll=2s", job.Settings{Store: "file://" + store}, dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	tree := filepath.Join(testenv.RepoRoot(t), "examples", "tree")
	env := providertest.PullEnv(px)
	env.New = func(t *testing.T) provider.Provider {
		p, err := process.New(process.Config{Dir: filepath.Join(dir, "builders"), Pkgrun: bin, Args: []string{"--pkgsrc", tree}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	providertest.Run(t, env)
}

func TestNewRefusesNoDir(t *testing.T) {
	if _, err := process.New(process.Config{}); err == nil {
		t.Error("a provider without a directory was made")
	}
}
