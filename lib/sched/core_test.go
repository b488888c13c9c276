package sched

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// graph builds a Graph from "name:dep,dep" items; a name starting with
// "skip" gets a PKG_SKIP_REASON.
func graph(t testing.TB, spec ...string) *Graph {
	t.Helper()
	var b strings.Builder
	for _, s := range spec {
		name, deps, _ := strings.Cut(s, ":")
		fmt.Fprintf(&b, "PKGNAME=%s-1.0\nPKG_LOCATION=cat/%s\n", name, name)
		if strings.HasPrefix(name, "skip") {
			b.WriteString("PKG_SKIP_REASON=not for this platform\n")
		}
		if deps != "" {
			var full []string
			for _, d := range strings.Split(deps, ",") {
				full = append(full, d+"-1.0")
			}
			fmt.Fprintf(&b, "DEPENDS=%s\n", strings.Join(full, " "))
		}
	}
	g, err := ParsePresolve(strings.NewReader(b.String()), "test")
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func node(t testing.TB, g *Graph, name string) int32 {
	t.Helper()
	i, ok := g.Lookup(name + "-1.0")
	if !ok {
		t.Fatalf("no package %s", name)
	}
	return i
}

func stateMap(g *Graph, c *Core) map[string]string {
	m := map[string]string{}
	for i := range g.Len() {
		st, det := c.State(int32(i))
		s := string(st)
		if det != "" && (st == IndirectFailed || st == IndirectPrefailed) {
			s += "(" + strings.TrimSuffix(det, "-1.0") + ")"
		}
		m[strings.TrimSuffix(g.Name[i], "-1.0")] = s
	}
	return m
}

// TestPropagation checks pbulk's rules (spec §3): failures of every kind
// mark open transitive dependents, prefailed roots win at start-up,
// decided packages stay as they are.
func TestPropagation(t *testing.T) {
	spec := []string{"a", "b:a", "c:b", "d:a", "skip1", "e:skip1,a", "f:e", "g"}
	tests := []struct {
		name    string
		actions []string // "pkg=state": Pop it (if ready) and Finish it with state
		want    map[string]string
	}{
		{"start", nil, map[string]string{
			"a": "open", "b": "open", "c": "open", "d": "open", "skip1": "prefailed",
			"e": "indirect-prefailed(skip1)", "f": "indirect-prefailed(skip1)", "g": "open"}},
		{"a fails", []string{"a=failed"}, map[string]string{
			"a": "failed", "b": "indirect-failed(a)", "c": "indirect-failed(a)", "d": "indirect-failed(a)",
			"skip1": "prefailed", "e": "indirect-prefailed(skip1)", "f": "indirect-prefailed(skip1)", "g": "open"}},
		{"skew propagates like failed", []string{"a=done", "b=skew"}, map[string]string{
			"a": "done", "b": "skew", "c": "indirect-failed(b)", "d": "open",
			"skip1": "prefailed", "e": "indirect-prefailed(skip1)", "f": "indirect-prefailed(skip1)", "g": "open"}},
		{"timeout after a done dependent", []string{"a=done", "d=done", "b=timeout"}, map[string]string{
			"a": "done", "b": "timeout", "c": "indirect-failed(b)", "d": "done",
			"skip1": "prefailed", "e": "indirect-prefailed(skip1)", "f": "indirect-prefailed(skip1)", "g": "open"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := graph(t, spec...)
			c, _ := NewCore(g, Keys(g, Durations(g, nil), OrderPath, nil), g.Initial, g.Reason)
			for _, a := range tc.actions {
				name, st, _ := strings.Cut(a, "=")
				i := node(t, g, name)
				// Pop until i comes out; put the others back.
				var other []int32
				for {
					j, ok := c.Pop()
					if !ok {
						t.Fatalf("%s never became ready", name)
					}
					if j == i {
						break
					}
					other = append(other, j)
				}
				for _, j := range other {
					c.Requeue(j, "")
				}
				c.Finish(i, State(st), "")
			}
			got := stateMap(g, c)
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s: %s, want %s", k, got[k], v)
				}
			}
		})
	}
}

// TestResumeRepairs checks NewCore on saved states: in_processing goes
// back to open and a failure saved without its propagation is propagated.
func TestResumeRepairs(t *testing.T) {
	g := graph(t, "a", "b:a", "c:b", "x")
	state := []State{Failed, Open, Open, InProcessing}
	c, changes := NewCore(g, Keys(g, Durations(g, nil), OrderPath, nil), state, make([]string, 4))
	got := stateMap(g, c)
	want := map[string]string{"a": "failed", "b": "indirect-failed(a)", "c": "indirect-failed(a)", "x": "open"}
	if !maps(got, want) {
		t.Errorf("states %v, want %v", got, want)
	}
	if len(changes) != 3 {
		t.Errorf("changes %+v, want 3 (x requeued, b and c failed)", changes)
	}
	if i, ok := c.Pop(); !ok || g.Name[i] != "x-1.0" {
		t.Errorf("ready: %v %v, want x", i, ok)
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestPbulkOrder checks pbulk's queue (spec §4): depth (weight) first,
// first-ready among equals, presolve order at start, a completion's
// dependents released in reverse reading order.
func TestPbulkOrder(t *testing.T) {
	// r has dependents a, b, c (read in that order); d and e are leaves
	// with depth 1, like a, b and c; r has depth 4.
	g := graph(t, "d", "r", "a:r", "b:r", "c:r", "e")
	c, _ := NewCore(g, Keys(g, nil, OrderPbulk, nil), g.Initial, g.Reason)
	var order []string
	for {
		i, ok := c.Pop()
		if !ok {
			break
		}
		order = append(order, strings.TrimSuffix(g.Name[i], "-1.0"))
		c.Finish(i, Done, "")
	}
	// r first (weight 400), then d, e (ready at start, presolve order),
	// then c, b, a (released by r in reverse reading order).
	want := []string{"r", "d", "e", "c", "b", "a"}
	if !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if g.Weight[node(t, g, "r")] != 400 {
		t.Errorf("weight of r %d, want 400", g.Weight[node(t, g, "r")])
	}
}

// TestPathOrder checks that our order prefers the longer remaining path,
// and that a user priority list (with its dependencies) beats it.
func TestPathOrder(t *testing.T) {
	g := graph(t, "short", "long", "mid:long", "top:mid", "want:short")
	dur := []int64{10, 10, 10, 10, 10}
	keys := Keys(g, dur, OrderPath, nil)
	c, _ := NewCore(g, keys, g.Initial, g.Reason)
	if i, _ := c.Pop(); g.Name[i] != "long-1.0" {
		t.Errorf("first %s, want long-1.0 (path 30)", g.Name[i])
	}
	user, err := ReadPriority(g, strings.NewReader("# mine\ncat/want\n"), "prio")
	if err != nil {
		t.Fatal(err)
	}
	c, _ = NewCore(g, Keys(g, dur, OrderPath, user), g.Initial, g.Reason)
	if i, _ := c.Pop(); g.Name[i] != "short-1.0" {
		t.Errorf("with priority list first %s, want short-1.0 (dependency of want)", g.Name[i])
	}
	if _, err := ReadPriority(g, strings.NewReader("cat/want\nnosuch/pkg\n"), "prio"); err == nil || !strings.Contains(err.Error(), "prio:2") {
		t.Errorf("unknown name: error %v, want one naming prio:2", err)
	}
}

func TestDurations(t *testing.T) {
	g := graph(t, "a", "b", "c")
	g.OwnWeight[2] = 300
	d := Durations(g, map[string]int64{"cat/a": 1000, "cat/x": 3000})
	// b: median of known histories (a 1000, x 3000 -> 3000 as the upper median), c: that times 3.
	if d[0] != 1000 || d[1] != 3000 || d[2] != 9000 {
		t.Errorf("durations %v, want [1000 3000 9000]", d)
	}
	d = Durations(g, nil)
	if d[0] != DefaultDuration || d[2] != 3*DefaultDuration {
		t.Errorf("durations without history %v", d)
	}
}

func TestParsePresolveErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"PKGNAME=a-1\nDEPENDS=b-1\n", "f:2: package a-1: dependency b-1 does not exist"},
		{"PKG_LOCATION=x\n", "f:1: PKG_LOCATION before the first PKGNAME"},
		{"PKGNAME=a-1\nno equals\n", "f:2: not a VAR=value line"},
		{"PKGNAME=a-1\nDEPENDS=b-1\nPKGNAME=b-1\nDEPENDS=a-1\n", "cyclic dependency"},
		{"PKGNAME=a-1\nPKGNAME=a-1\n", "f:2: duplicate PKGNAME a-1"},
	} {
		_, err := ParsePresolve(strings.NewReader(tc.in), "f")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParsePresolve(f *testing.F) {
	f.Add("PKGNAME=a-1\nPKG_LOCATION=x/a\nDEPENDS=b-1\nPKGNAME=b-1\nPBULK_WEIGHT=7\n")
	f.Add("PKGNAME=a-1\nPKG_SKIP_REASON=no\n")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParsePresolve(strings.NewReader(s), "fuzz")
		if err != nil {
			return
		}
		c, _ := NewCore(g, Keys(g, Durations(g, nil), OrderPath, nil), g.Initial, g.Reason)
		for {
			i, ok := c.Pop()
			if !ok {
				break
			}
			c.Finish(i, Done, "")
		}
		for i := range g.Len() {
			if st, _ := c.State(int32(i)); st == Open || st == InProcessing {
				t.Fatalf("%s left %s", g.Name[i], st)
			}
		}
	})
}

func FuzzReadPriority(f *testing.F) {
	f.Add("cat/a\n# c\n a-1.0 \n")
	f.Fuzz(func(t *testing.T, s string) {
		g := graph(t, "a", "b:a")
		ReadPriority(g, strings.NewReader(s), "fuzz")
	})
}

func FuzzReadHistoryCSV(f *testing.F) {
	f.Add("pkgpath,outcome,duration\nx/a,success,100\nx/a,failed,3\n")
	f.Fuzz(func(t *testing.T, s string) {
		ReadHistoryCSV(strings.NewReader(s), "fuzz")
	})
}

// TestPopAccepted: a slot that refuses some packages gets the best one it
// takes; the ones it passed over keep their order for the next Pop; no
// package it takes leaves the queue untouched; Readied changes only when a
// package is queued.
func TestPopAccepted(t *testing.T) {
	// Pbulk order: r (weight 400), then d, e in presolve order.
	for _, c := range []struct {
		name    string
		refuse  []string
		got     string // "" : none accepted
		thenPop []string
	}{
		{name: "takes all", got: "r", thenPop: []string{"d", "e"}},
		{name: "refuses the best", refuse: []string{"r"}, got: "d", thenPop: []string{"r", "e"}},
		{name: "refuses two", refuse: []string{"r", "d"}, got: "e", thenPop: []string{"r", "d"}},
		{name: "refuses all", refuse: []string{"r", "d", "e"}, thenPop: []string{"r", "d", "e"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := graph(t, "d", "r", "a:r", "b:r", "c:r", "e")
			core, _ := NewCore(g, Keys(g, nil, OrderPbulk, nil), g.Initial, g.Reason)
			before := core.Readied()
			i, ok := core.PopAccepted(func(i int32) bool {
				return !slices.Contains(c.refuse, strings.TrimSuffix(g.Name[i], "-1.0"))
			})
			got := ""
			if ok {
				got = strings.TrimSuffix(g.Name[i], "-1.0")
				if st, _ := core.State(i); st != InProcessing {
					t.Errorf("%s is %s after PopAccepted, want in_processing", got, st)
				}
			}
			if got != c.got || core.Readied() != before {
				t.Errorf("PopAccepted: %q (readied %d -> %d), want %q", got, before, core.Readied(), c.got)
			}
			var names []string
			for _, n := range core.ReadyNodes() {
				names = append(names, strings.TrimSuffix(g.Name[n], "-1.0"))
			}
			var rest []string
			for {
				i, ok := core.Pop()
				if !ok {
					break
				}
				rest = append(rest, strings.TrimSuffix(g.Name[i], "-1.0"))
			}
			if !slices.Equal(rest, c.thenPop) || !slices.Equal(names, c.thenPop) {
				t.Errorf("then Pop gives %v, ReadyNodes %v; want %v", rest, names, c.thenPop)
			}
			if ok {
				core.Finish(i, Done, "")
			}
			if c.got == "r" && core.Readied() != before+3 {
				t.Errorf("Readied %d after r released 3 packages, want %d", core.Readied(), before+3)
			}
		})
	}
}
