package schedbench

import (
	"bufio"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/sched"
	"github.com/pkgbulk/pkgbulk/lib/speedup"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// muttHistory is the real 71-package build (bob's mutt history and
// dependency graph): the graph, and every package's model fitted from its
// recorded stages.
func muttHistory(b testing.TB) (*sched.Graph, []speedup.Model, map[string]speedup.Model) {
	csvPath := testenv.SharedData(b, "history/bob-history-mutt.csv")
	edgesPath := testenv.SharedData(b, "history/bob-depgraph-mutt.txt")
	f, err := os.Open(csvPath)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h, err := speedup.ReadCSV(f, csvPath)
	if err != nil {
		b.Fatal(err)
	}
	byPath := h.Models()
	// pkgname -> pkgpath from the CSV, then the edges by pkgname.
	f.Seek(0, 0)
	names := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		r := strings.Split(sc.Text(), ",")
		if len(r) > 3 && r[1] != "pkgpath" {
			names[r[2]] = r[1]
		}
	}
	deps := map[string][]string{}
	ef, err := os.Open(edgesPath)
	if err != nil {
		b.Fatal(err)
	}
	defer ef.Close()
	sc = bufio.NewScanner(ef)
	for sc.Scan() {
		dep, dependent, ok := strings.Cut(sc.Text(), " -> ")
		if ok && names[dep] != "" && names[dependent] != "" {
			deps[dependent] = append(deps[dependent], dep)
		}
	}
	var rec strings.Builder
	for name, path := range names {
		fmt.Fprintf(&rec, "PKGNAME=%s\nPKG_LOCATION=%s\nDEPENDS=%s\n", name, path, strings.Join(deps[name], " "))
	}
	g, err := sched.ParsePresolve(strings.NewReader(rec.String()), "mutt history")
	if err != nil {
		b.Fatal(err)
	}
	models := make([]speedup.Model, g.Len())
	for i := range models {
		models[i] = byPath[g.Path[i]]
	}
	return g, models, byPath
}

// drawModels gives every package of g a model drawn from the fitted ones
// (one-core time and parallel fraction of a random package of the real
// history, fixed seed).
func drawModels(g *sched.Graph, pool map[string]speedup.Model) []speedup.Model {
	var list []speedup.Model
	for _, p := range slices.Sorted(maps.Keys(pool)) {
		list = append(list, pool[p])
	}
	rng := rand.New(rand.NewPCG(42, 7))
	out := make([]speedup.Model, g.Len())
	for i := range out {
		out[i] = list[rng.IntN(len(list))]
	}
	return out
}

// BenchmarkCores prints, for the real 71-package history with its fitted
// models and for the 29,022-package illumos scan with models drawn from
// that history: the makespan with MAKE_JOBS granted by the critical-path
// policy on W builders of 4 cores, against the one-core critical path
// (target: below 0.8 of it at 8×4) and against one core per job on the
// same 4W cores (target: never worse).
func BenchmarkCores(b *testing.B) {
	g71, m71, pool := muttHistory(b)
	gIll := illumosGraph(b)
	mIll := drawModels(gIll, pool)
	for _, c := range []struct {
		name   string
		g      *sched.Graph
		models []speedup.Model
	}{{"mutt-71", g71, m71}, {"illumos-29022", gIll, mIll}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				for _, w := range []int{1, 2, 4, 8, 16, 32, 64} {
					pol, err := sched.SimulateCores(c.g, sched.CoreSimOptions{Builders: w, Cores: 4, Models: c.models})
					if err != nil {
						b.Fatal(err)
					}
					base, err := sched.SimulateCores(c.g, sched.CoreSimOptions{Builders: w, Cores: 4, Models: c.models, OneCorePerJob: true})
					if err != nil {
						b.Fatal(err)
					}
					fmt.Printf("%-14s W=%-3d ×4 cores: policy %9s  one core per job %9s (%.3f)  one-core critical path %9s  policy/critical %.3f  jobs with MAKE_JOBS>1 %d\n",
						c.name, w, ms(pol.MakespanMS), ms(base.MakespanMS), float64(pol.MakespanMS)/float64(base.MakespanMS),
						ms(pol.CriticalMS), pol.PathOverMS, pol.Multi)
				}
			}
		})
	}
}
