// Package schedtest makes build databases for tests of the scheduler and
// its executors: a list of packages with dependencies becomes a database
// of the current schema, with pbulk's depth, weight and start states
// computed the way pkgdag computes them.
package schedtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/db"
)

// Pkg is one package of a test build set.
type Pkg struct {
	Name   string   // PKGNAME
	Path   string   // pkgpath; default "test/" + PKGBASE
	Deps   []string // PKGNAMEs it depends on
	Skip   string   // PKG_SKIP_REASON
	Fail   string   // PKG_FAIL_REASON
	Weight int      // PBULK_WEIGHT; 0 means 100
	Extra  string   // more lines of the scan record, e.g. "MAKE_JOBS_SAFE=no\n"
}

// WriteDB creates a build database at path (which must not exist).
func WriteDB(ctx context.Context, path string, pkgs []Pkg) error {
	idx := make(map[string]int, len(pkgs))
	for i, p := range pkgs {
		if _, dup := idx[p.Name]; dup {
			return fmt.Errorf("duplicate package %s", p.Name)
		}
		idx[p.Name] = i
	}
	dependents := make([][]int, len(pkgs))
	for i, p := range pkgs {
		for _, d := range p.Deps {
			j, ok := idx[d]
			if !ok {
				return fmt.Errorf("package %s: unknown dependency %s", p.Name, d)
			}
			dependents[j] = append(dependents[j], i)
		}
	}
	closure := func(i int) map[int]bool {
		seen := map[int]bool{i: true}
		stack := []int{i}
		for len(stack) > 0 {
			k := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, d := range dependents[k] {
				if !seen[d] {
					seen[d] = true
					stack = append(stack, d)
				}
			}
		}
		return seen
	}
	weightOf := func(p Pkg) int {
		if p.Weight == 0 {
			return 100
		}
		return p.Weight
	}
	initial := make([]string, len(pkgs))
	detail := make([]string, len(pkgs))
	for i := range initial {
		initial[i] = "open"
	}
	for i, p := range pkgs {
		if p.Skip != "" || p.Fail != "" {
			for k := range closure(i) {
				if k != i && initial[k] == "open" {
					initial[k], detail[k] = "indirect-prefailed", p.Name
				}
			}
			initial[i] = "prefailed"
			if p.Skip != "" {
				detail[i] = "PKG_SKIP_REASON=" + p.Skip
			} else {
				detail[i] = "PKG_FAIL_REASON=" + p.Fail
			}
		}
	}
	d, err := db.Create(ctx, path)
	if err != nil {
		return err
	}
	defer d.Close()
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i, p := range pkgs {
		path := p.Path
		if path == "" {
			path = "test/" + base(p.Name)
		}
		var rec strings.Builder
		fmt.Fprintf(&rec, "PKGNAME=%s\nPKG_LOCATION=%s\nALL_DEPENDS=\nPKG_SKIP_REASON=%s\nPKG_FAIL_REASON=%s\n", p.Name, path, p.Skip, p.Fail)
		rec.WriteString(p.Extra)
		// The presolve view appends DEPENDS=depends to the scanned record.
		var depends any
		if len(p.Deps) > 0 {
			depends = strings.Join(p.Deps, " ")
		}
		cl := closure(i)
		w := 0
		for k := range cl {
			w += weightOf(pkgs[k])
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO packages (id, pkgname, pkgbase, version, pkgpath, all_depends,
			skip_reason, fail_reason, no_bin_on_ftp, restricted, categories, maintainer, use_destdir,
			bootstrap_pkg, usergroup_phase, pbulk_weight, depends, depth, weight, initial_state, initial_detail)
			VALUES (?, ?, ?, ?, ?, '', ?, ?, '', '', 'test', '', 'user-destdir', '', '', ?, ?, ?, ?, ?, ?)`,
			i+1, p.Name, base(p.Name), version(p.Name), path, p.Skip, p.Fail, weightOf(p), depends,
			len(cl), w, initial[i], detail[i])
		if err != nil {
			return fmt.Errorf("insert %s: %w", p.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO scan_records (pkg_id, record) VALUES (?, ?)`, i+1, rec.String()); err != nil {
			return fmt.Errorf("insert %s: %w", p.Name, err)
		}
		for ord, dn := range p.Deps {
			if _, err := tx.ExecContext(ctx, `INSERT INTO depends (pkg_id, dep_id, pattern, ord) VALUES (?, ?, ?, ?)`,
				i+1, idx[dn]+1, base(dn)+"-[0-9]*", ord); err != nil {
				return fmt.Errorf("insert edge %s -> %s: %w", p.Name, dn, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	return d.Close()
}

func base(name string) string {
	if k := strings.LastIndexByte(name, '-'); k > 0 {
		return name[:k]
	}
	return name
}

func version(name string) string {
	if k := strings.LastIndexByte(name, '-'); k > 0 {
		return name[k+1:]
	}
	return ""
}

// RandomDAG returns n packages named p0001-1.0 ... with random
// dependencies on earlier packages (so the graph is acyclic): a few
// foundation packages many depend on, and chains, like a pkgsrc tree.
func RandomDAG(seed uint64, n int) []Pkg {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	pkgs := make([]Pkg, n)
	for i := range pkgs {
		pkgs[i].Name = fmt.Sprintf("p%04d-1.0", i)
		if i == 0 {
			continue
		}
		k := rng.IntN(min(i, 5) + 1)
		seen := map[int]bool{}
		for range k {
			var j int
			if rng.IntN(3) == 0 {
				j = rng.IntN(min(i, 10)) // a foundation package
			} else {
				j = max(0, i-1-rng.IntN(min(i, 30))) // a recent one: long chains
			}
			if !seen[j] {
				seen[j] = true
				pkgs[i].Deps = append(pkgs[i].Deps, pkgs[j].Name)
			}
		}
	}
	return pkgs
}
