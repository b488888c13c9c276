package sched

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/speedup"
)

// randomGraph is a DAG of n packages, each depending on up to 3 earlier
// ones, with a chain of the first chain packages.
func randomGraph(t *testing.T, n, chain int, seed uint64) *Graph {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "PKGNAME=p%d-1.0\nPKG_LOCATION=cat/p%d\n", i, i)
		var deps []string
		if i > 0 && i < chain {
			deps = append(deps, fmt.Sprintf("p%d-1.0", i-1))
		} else if i >= chain {
			for k := 0; k < rng.IntN(4) && i > 0; k++ {
				d := fmt.Sprintf("p%d-1.0", rng.IntN(i))
				if !strings.Contains(strings.Join(deps, " "), d) {
					deps = append(deps, d)
				}
			}
		}
		fmt.Fprintf(&b, "DEPENDS=%s\n", strings.Join(deps, " "))
	}
	g, err := ParsePresolve(strings.NewReader(b.String()), "test")
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestSimulateCoresPacking(t *testing.T) {
	g := randomGraph(t, 400, 20, 3)
	rng := rand.New(rand.NewPCG(9, 9))
	models := make([]speedup.Model, g.Len())
	for i := range models {
		models[i] = speedup.FromFraction(int64(1000+rng.IntN(100000)), rng.Float64())
	}
	for _, c := range []struct {
		builders, cores int
		over            float64
	}{{1, 1, 1}, {2, 4, 1}, {8, 4, 1}, {3, 8, 1.5}} {
		r, err := SimulateCores(g, CoreSimOptions{Builders: c.builders, Cores: c.cores, Oversubscribe: c.over, Models: models})
		if err != nil {
			t.Fatal(err)
		}
		if limit := int(float64(c.cores) * c.over); r.PeakUsed > limit || r.MaxGranted > limit {
			t.Errorf("%d×%d (×%.1f): peak %d cores on a builder, max grant %d", c.builders, c.cores, c.over, r.PeakUsed, r.MaxGranted)
		}
		if r.Jobs != g.Len() {
			t.Errorf("%d of %d jobs built", r.Jobs, g.Len())
		}
		if c.cores == 1 && r.Multi != 0 {
			t.Errorf("one core per builder, yet %d jobs got more", r.Multi)
		}
	}
}

// TestSimulateCoresSerial: packages whose models have no parallel part
// (MAKE_JOBS_SAFE=no) always get one job, and the result is the one
// core per job baseline's.
func TestSimulateCoresSerial(t *testing.T) {
	g := randomGraph(t, 200, 10, 5)
	models := make([]speedup.Model, g.Len())
	for i := range models {
		models[i] = speedup.Model{SerialMS: int64(1000 + 37*i)}
	}
	r, err := SimulateCores(g, CoreSimOptions{Builders: 2, Cores: 4, Models: models})
	if err != nil {
		t.Fatal(err)
	}
	base, err := SimulateCores(g, CoreSimOptions{Builders: 2, Cores: 4, Models: models, OneCorePerJob: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Multi != 0 || r.MaxGranted != 1 {
		t.Errorf("serial packages got more than one job: %d jobs, max %d", r.Multi, r.MaxGranted)
	}
	if r.MakespanMS != base.MakespanMS {
		t.Errorf("makespan %d, one core per job %d", r.MakespanMS, base.MakespanMS)
	}
}

// TestSimulateCoresChain: a long chain of parallel builds beside short
// independent work: the chain gets the cores and the makespan falls below
// the one-core critical path.
func TestSimulateCoresChain(t *testing.T) {
	g := randomGraph(t, 300, 12, 11)
	models := make([]speedup.Model, g.Len())
	for i := range models {
		if i < 12 {
			models[i] = speedup.FromFraction(600_000, 0.9)
		} else {
			models[i] = speedup.FromFraction(10_000, 0.5)
		}
	}
	r, err := SimulateCores(g, CoreSimOptions{Builders: 8, Cores: 4, Models: models})
	if err != nil {
		t.Fatal(err)
	}
	base, _ := SimulateCores(g, CoreSimOptions{Builders: 8, Cores: 4, Models: models, OneCorePerJob: true})
	if r.MakespanMS >= base.MakespanMS || float64(r.MakespanMS) > 0.8*float64(r.CriticalMS) {
		t.Errorf("makespan %d ms, one core per job %d, one-core critical path %d", r.MakespanMS, base.MakespanMS, r.CriticalMS)
	}
	for i := range 12 {
		if r.MakeJobsByJob[i] < 2 {
			t.Errorf("chain package %d got MAKE_JOBS=%d", i, r.MakeJobsByJob[i])
		}
	}
}

func TestGrant(t *testing.T) {
	par := speedup.FromFraction(100_000, 0.9)
	ser := speedup.Model{SerialMS: 100_000}
	p := CorePolicy{}
	for _, c := range []struct {
		name               string
		m                  speedup.Model
		path, longest      int64
		limit, spare, want int
		workBound          bool
	}{
		{"critical, parallel", par, 1000, 1000, 8, 0, 8, false},
		{"near critical", par, 850, 1000, 4, 0, 4, false},
		{"off the path, no spare", par, 100, 1000, 8, 0, 1, false},
		{"off the path, spare cores", par, 100, 1000, 8, 2, 3, false},
		{"serial on the path", ser, 1000, 1000, 8, 8, 1, false},
		{"one free core", par, 1000, 1000, 1, 0, 1, false},
		{"critical but work-bound", par, 1000, 1000, 8, 0, 1, true},
		{"work-bound, spare cores", par, 1000, 1000, 8, 3, 1, true},
	} {
		if got := p.Grant(c.m, c.path, c.longest, c.limit, c.spare, c.workBound); got != c.want {
			t.Errorf("%s: grant %d, want %d", c.name, got, c.want)
		}
	}
}
