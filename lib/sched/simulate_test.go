package sched_test

import (
	"bufio"
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/sched"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// muttDB builds a database from bob's real mutt build (71 packages, 463
// edges) and returns it with the durations of its real history file.
func muttDB(t *testing.T) (*sched.Graph, map[string]int64) {
	edges := testenv.SharedData(t, "history/bob-depgraph-mutt.txt")
	histf := testenv.SharedData(t, "history/bob-history-mutt.csv")
	hist, err := sched.ReadHistoryCSVFile(histf)
	if err != nil {
		t.Fatal(err)
	}
	// pkgname -> pkgpath from the history file.
	paths := map[string]string{}
	f, err := os.Open(histf)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		c := strings.Split(sc.Text(), ",")
		if len(c) > 2 {
			paths[c[2]] = c[1]
		}
	}
	f.Close()
	deps := map[string][]string{}
	var names []string
	add := func(n string) {
		if _, ok := deps[n]; !ok {
			deps[n] = nil
			names = append(names, n)
		}
	}
	f, err = os.Open(edges)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc = bufio.NewScanner(f)
	for sc.Scan() {
		dep, pkg, ok := strings.Cut(sc.Text(), " -> ")
		if !ok {
			t.Fatalf("%s: bad line %q", edges, sc.Text())
		}
		add(dep)
		add(pkg)
		deps[pkg] = append(deps[pkg], dep)
	}
	// Write packages dependencies first (WriteDB wants known names only).
	var pkgs []schedtest.Pkg
	done := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		if done[n] {
			return
		}
		done[n] = true
		for _, d := range deps[n] {
			visit(d)
		}
		pkgs = append(pkgs, schedtest.Pkg{Name: n, Path: paths[n], Deps: deps[n]})
	}
	for _, n := range names {
		visit(n)
	}
	d, _ := newDB(t, pkgs)
	g, err := sched.LoadGraph(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	return g, hist
}

// TestSimulateMutt simulates the real mutt build on its real durations:
// one worker takes exactly the total work; unlimited workers take exactly
// the critical path; in between the makespan stays between the lower
// bound and the bound any greedy schedule meets (Graham: work/W + CP).
func TestSimulateMutt(t *testing.T) {
	g, hist := muttDB(t)
	dur := sched.Durations(g, hist)
	known := 0
	for _, p := range g.Path {
		if _, ok := hist[p]; ok {
			known++
		}
	}
	if g.Len() != 71 || known != 71 {
		t.Fatalf("%d packages, %d with history; want 71 and 71", g.Len(), known)
	}
	var total int64
	for _, v := range dur {
		total += v
	}
	one, err := sched.Simulate(g, sched.SimOptions{Workers: 1, Dur: dur})
	if err != nil {
		t.Fatal(err)
	}
	if one.MakespanMS != total || one.Jobs != 71 || one.Utilisation != 1 {
		t.Errorf("one worker: %+v, want makespan %d", one, total)
	}
	many, _ := sched.Simulate(g, sched.SimOptions{Workers: 71, Dur: dur})
	if many.MakespanMS != many.CriticalMS || many.Ratio != 1 {
		t.Errorf("71 workers: %+v, want makespan = critical path", many)
	}
	for _, w := range []int{2, 4, 8} {
		for _, o := range []sched.Order{sched.OrderPath, sched.OrderPbulk} {
			r, _ := sched.Simulate(g, sched.SimOptions{Workers: w, Order: o, Dur: dur})
			if r.MakespanMS < r.LowerBoundMS || r.MakespanMS > total/int64(w)+r.CriticalMS {
				t.Errorf("W=%d %s: %+v outside [LB, work/W + CP]", w, o, r)
			}
			t.Logf("mutt W=%d %-5s makespan %ds LB %ds ratio %.3f util %.2f", w, o, r.MakespanMS/1000, r.LowerBoundMS/1000, r.Ratio, r.Utilisation)
		}
	}
}

func TestLognormal(t *testing.T) {
	l := sched.DefaultLognormal
	a, b := l.Generate(10000), l.Generate(10000)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different durations")
	}
	s := slices.Sorted(slices.Values(a))
	med := s[len(s)/2]
	if med < 50_000 || med > 70_000 || s[len(s)-1] > int64(float64(l.MedianMS)*l.Cap) {
		t.Errorf("median %d, max %d", med, s[len(s)-1])
	}
}
