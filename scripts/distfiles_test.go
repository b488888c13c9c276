package scripts

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// site is MASTER_SITE_EXAMPLE over HTTP on loopback: it serves the example
// tree's sites/example/ and counts the requests per path.
type site struct {
	*httptest.Server
	mu    sync.Mutex
	count map[string]int
}

func newSite(t *testing.T, dir string) *site {
	s := &site{count: map[string]int{}}
	files := http.FileServer(http.Dir(dir))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.count[r.URL.Path]++
		s.mu.Unlock()
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// take returns the counts so far and starts again from zero.
func (s *site) take() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.count
	s.count = map[string]int{}
	return c
}

// The distfiles of the example tree's packages that fetch from
// MASTER_SITE_EXAMPLE, as the site's paths.
var sitePaths = []string{"/exdist/exdist-1.0.tar.gz", "/exdist-data/data-1.tar.gz", "/exdist-data/words-1.tar.gz"}

// TestDistfilesFetchOnce: three builders (pkgsched -j 3) build the example
// tree's packages with fetched distfiles. Three of them share one
// distfile and start at once: the site sees one request per distfile, the
// files land in the store's distfiles/, a wrong one (exbadsum) never does,
// a package whose site is down fails at checksum. A second build fetches
// nothing; a corrupt distfile put into the store is detected, replaced
// by one fetch and not used.
func TestDistfilesFetchOnce(t *testing.T) {
	testenv.Program(t, "bmake")
	testenv.Program(t, "curl") // the example tree's fetch from http:// sites (wget would do too)
	bin := tools(t)
	root := testenv.RepoRoot(t)
	tree := filepath.Join(root, "examples", "tree")
	srv := newSite(t, filepath.Join(tree, "sites", "example"))
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "packages")
	os.MkdirAll(storeDir, 0o755)
	storeURL := "file://" + storeDir

	pkgs := []string{"net/exdist", "net/exdist-doc", "net/exdist-man", "net/exdist-data", "net/exbadsum", "net/exsitedown"}
	pscan := filepath.Join(dir, "pscan")
	if out, err := exec.Command(filepath.Join(bin, "pkgscan"), append([]string{"-C", tree, "-j", "2", "-o", pscan}, pkgs...)...).CombinedOutput(); err != nil {
		t.Fatalf("pkgscan: %v\n%s", err, out)
	}
	db := filepath.Join(dir, "bulk.db")
	dag := func() {
		t.Helper()
		if out, err := exec.Command(filepath.Join(bin, "pkgdag"), "build", "-q", "-o", db, pscan).CombinedOutput(); err != nil {
			t.Fatalf("pkgdag build: %v\n%s", err, out)
		}
	}
	dag()

	type listed struct {
		Name     string   `json:"name"`
		Status   string   `json:"status"`
		Packages []string `json:"packages"`
	}
	missing := func() []string {
		t.Helper()
		out, err := exec.Command(filepath.Join(bin, "pkgsched"), "distfiles", "--db", db, "--pkgsrc", tree, "--store", storeURL, "--missing", "--json").Output()
		if err != nil {
			t.Fatalf("pkgsched distfiles: %v", err)
		}
		var l []listed
		if err := json.Unmarshal(out, &l); err != nil {
			t.Fatalf("pkgsched distfiles --json: %v\n%s", err, out)
		}
		var names []string
		for _, n := range l {
			names = append(names, n.Name+"="+n.Status)
		}
		return names
	}
	if got, want := strings.Join(missing(), " "), "exbadsum-1.0.tar.gz=missing exdist-1.0.tar.gz=missing exdist-data/data-1.tar.gz=missing exdist-data/words-1.tar.gz=missing exsitedown-1.0.tar.gz=missing"; got != want {
		t.Errorf("before the build, pkgsched distfiles --missing says\n%s\nwant\n%s", got, want)
	}

	build := func(extra ...string) {
		t.Helper()
		args := append([]string{"run", "--db", db, "--pkgsrc", tree, "--store", storeURL, "--work-root", filepath.Join(dir, "work"),
			"-j", "3", "--env", "MASTER_SITE_EXAMPLE=" + srv.URL + "/"}, extra...)
		cmd := exec.Command(filepath.Join(bin, "pkgsched"), args...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("pkgsched run: %v (want exit 1: exbadsum and exsitedown fail)\n%s", err, errb.String())
		}
		d := openDB(t, db)
		states := queryStrings(t, d, `SELECT p.pkgname || ' ' || b.state || ' ' || substr(b.detail, 1, instr(b.detail || ':', ':') - 1) FROM build_state b JOIN packages p ON p.id = b.pkg_id ORDER BY 1`)
		want := []string{"exbadsum-1.0 failed checksum", "exdist-1.0 done ", "exdist-data-1 done ", "exdist-doc-1.0 done ", "exdist-man-1.0 done ", "exsitedown-1.0 failed checksum"}
		if strings.Join(states, "\n") != strings.Join(want, "\n") {
			t.Errorf("states:\n%s\nwant:\n%s\n%s", strings.Join(states, "\n"), strings.Join(want, "\n"), errb.String())
		}
		d.Close()
	}
	checkStore := func() {
		t.Helper()
		for _, p := range sitePaths {
			name := strings.TrimPrefix(p, "/exdist/")
			name = strings.TrimPrefix(name, "/")
			got, err := os.ReadFile(filepath.Join(storeDir, "distfiles", name))
			if err != nil {
				t.Errorf("distfile not stored: %v", err)
				continue
			}
			want, _ := os.ReadFile(filepath.Join(tree, "sites", "example", p))
			if sha256.Sum256(got) != sha256.Sum256(want) {
				t.Errorf("distfiles/%s in the store is not the site's file", name)
			}
		}
		if _, err := os.Stat(filepath.Join(storeDir, "distfiles", "exbadsum-1.0.tar.gz")); err == nil {
			t.Errorf("the distfile that does not match distinfo was stored")
		}
		var locks []string
		filepath.Walk(filepath.Join(storeDir, "locks"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				locks = append(locks, p)
			}
			return nil
		})
		if len(locks) > 0 {
			t.Errorf("leases left in the store: %v", locks)
		}
	}
	counts := func(when string, want int) {
		t.Helper()
		c := srv.take()
		for _, p := range sitePaths {
			if c[p] != want {
				t.Errorf("%s: the site served %s %d times, want %d (all requests: %v)", when, p, c[p], want, c)
			}
		}
		// Never stored, so fetched (and rejected) by every build.
		if c["/exbadsum/exbadsum-1.0.tar.gz"] != 1 {
			t.Errorf("%s: exbadsum's distfile was fetched %d times, want 1", when, c["/exbadsum/exbadsum-1.0.tar.gz"])
		}
	}

	// 1. Nothing in the store: one fetch per distfile for three builders.
	build()
	counts("first build", 1)
	checkStore()
	if got, want := strings.Join(missing(), " "), "exbadsum-1.0.tar.gz=missing exsitedown-1.0.tar.gz=missing"; got != want {
		t.Errorf("after the build, pkgsched distfiles --missing says\n%s\nwant\n%s", got, want)
	}

	// 2. Everything again (--force): the store serves every distfile.
	dag()
	build("--force")
	counts("second build", 0)

	// 3. A corrupt distfile in the store (same size, other bytes) is
	// detected, deleted and fetched once again; the builds use the good one.
	bad := filepath.Join(storeDir, "distfiles", "exdist-1.0.tar.gz")
	data, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Repeat([]byte{'x'}, len(data))
	if err := os.WriteFile(bad, corrupt, 0o644); err != nil {
		t.Fatal(err)
	}
	dag()
	build("--force")
	c := srv.take()
	if c["/exdist/exdist-1.0.tar.gz"] != 1 || c["/exdist-data/data-1.tar.gz"] != 0 {
		t.Errorf("after corrupting exdist-1.0.tar.gz in the store the site served %v, want exdist-1.0.tar.gz once and nothing else of exdist", c)
	}
	checkStore()
	var names []string
	for n := range c {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("third build fetched %v", names)
}
