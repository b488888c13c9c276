package pattern

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// TestPresolveRealData resolves every dependency pattern of the real illumos
// presolve file against all of its PKGNAMEs with BestPbulk the way
// pbulk-resolve does (a pattern that an earlier choice already matches adds
// nothing) and checks the result against the DEPENDS line pbulk-resolve
// wrote. Candidates are narrowed
// with Prefixes, as pkgdag does; a sample is checked against all names.
func TestPresolveRealData(t *testing.T) {
	if testing.Short() {
		t.Skip("reads a 160 MB scan; skipped with -short")
	}
	path := testenv.SharedData(t, "scan/presolve-illumos-2026.txt.zst")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()

	type record struct {
		name, allDepends, depends string
		hasDepends                bool
	}
	var recs []record
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "PKGNAME="):
			recs = append(recs, record{name: line[len("PKGNAME="):]})
		case len(recs) == 0:
		case strings.HasPrefix(line, "ALL_DEPENDS="):
			recs[len(recs)-1].allDepends = line[len("ALL_DEPENDS="):]
		case strings.HasPrefix(line, "DEPENDS="):
			recs[len(recs)-1].depends = line[len("DEPENDS="):]
			recs[len(recs)-1].hasDepends = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	names := make([]string, len(recs))
	byFirst := map[byte][]string{}
	for i, r := range recs {
		names[i] = r.name
		byFirst[r.name[0]] = append(byFirst[r.name[0]], r.name)
	}
	cache := map[string]string{}
	resolve := func(pat string) (string, bool) {
		if best, ok := cache[pat]; ok {
			return best, best != ""
		}
		p, err := Compile(pat)
		if err != nil {
			t.Fatalf("Compile(%q): %v", pat, err)
		}
		var cands []string
		for _, pre := range p.Prefixes() {
			if pre == "" {
				cands = names
				break
			}
			for _, n := range byFirst[pre[0]] {
				if strings.HasPrefix(n, pre) {
					cands = append(cands, n)
				}
			}
		}
		best, ok := p.BestPbulk(cands)
		// Scanning all names costs 29k matches per pattern; check that
		// the prefixes hid nothing for a sample of the patterns only.
		if len(cache)%32 == 0 {
			if best2, ok2 := p.BestPbulk(names); best2 != best || ok2 != ok {
				t.Errorf("%q: best over prefix candidates %q, over all names %q", pat, best, best2)
			}
		}
		cache[pat] = best
		return best, ok
	}
	var resolved, unresolved int
	for _, r := range recs {
		var got []string
		complete := true
	deps:
		for _, dep := range strings.Fields(r.allDepends) {
			pat := dep[:strings.IndexByte(dep, ':')]
			// pbulk-resolve (presolve.c resolve_entry) keeps an earlier
			// choice that also matches this pattern.
			p, err := Compile(pat)
			if err != nil {
				t.Fatalf("%s: %v", r.name, err)
			}
			for _, g := range got {
				if p.MatchPbulk(g) {
					continue deps
				}
			}
			best, ok := resolve(pat)
			if !ok {
				complete = false
				continue
			}
			got = append(got, best)
		}
		if !r.hasDepends {
			unresolved++
			// An empty dependency list also leaves no DEPENDS line.
			if complete && len(got) > 0 {
				t.Errorf("%s: every pattern resolves here, but pbulk-resolve wrote no DEPENDS", r.name)
			}
			continue
		}
		resolved++
		if want := r.depends; strings.Join(got, " ") != want {
			t.Errorf("%s: DEPENDS\n got %s\nwant %s", r.name, strings.Join(got, " "), want)
		}
	}
	t.Logf("%d records: %d DEPENDS lines reproduced, %d without DEPENDS (%d distinct patterns)", len(recs), resolved, unresolved, len(cache))
}
