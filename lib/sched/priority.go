package sched

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Order selects how ready packages are ranked.
type Order string

const (
	// OrderPath serves the package with the longest remaining path first:
	// its own estimated duration plus the longest chain of dependents
	// behind it. Ties go to pbulk's weight, then first-ready.
	OrderPath Order = "path"
	// OrderPbulk is pbulk-build's order: the PBULK_WEIGHT sum over the
	// package and its transitive dependents (the dependent count when no
	// package sets PBULK_WEIGHT), first-ready among equals.
	OrderPbulk Order = "pbulk"
)

// DefaultDuration is the estimate, in ms, for a package of PBULK_WEIGHT
// 100 when no history exists at all.
const DefaultDuration = 60_000

// Durations estimates every package's build time in ms: the median wall
// time of its last successful builds at the same pkgpath (hist), else the
// median over all packages that have history (DefaultDuration when none)
// scaled by the package's PBULK_WEIGHT/100, so that pbulk's hint still
// counts when nothing was learned.
func Durations(g *Graph, hist map[string]int64) []int64 {
	var known []int64
	for _, v := range hist {
		known = append(known, v)
	}
	def := int64(DefaultDuration)
	if len(known) > 0 {
		slices.Sort(known)
		def = known[len(known)/2]
	}
	dur := make([]int64, g.Len())
	for i := range dur {
		if v, ok := hist[g.Path[i]]; ok {
			dur[i] = max(v, 1)
			continue
		}
		dur[i] = max(def*g.OwnWeight[i]/100, 1)
	}
	return dur
}

// Keys computes every package's priority. user marks the packages of the
// user's priority list; they and their dependency closure come first.
func Keys(g *Graph, dur []int64, order Order, user []bool) []Key {
	n := g.Len()
	keys := make([]Key, n)
	topo, _ := g.topo() // the graph was checked when it was built
	if order != OrderPbulk {
		for _, i := range topo { // dependents before dependencies
			var best int64
			for _, d := range g.Dependents[i] {
				best = max(best, keys[d].Path)
			}
			keys[i].Path = best + dur[i]
		}
	}
	for i := range n {
		keys[i].Weight = g.Weight[i]
	}
	if user != nil {
		mark := make([]bool, n)
		var stack []int32
		for i, u := range user {
			if u && !mark[i] {
				mark[i] = true
				stack = append(stack, int32(i))
			}
		}
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, d := range g.Deps[i] {
				if !mark[d] {
					mark[d] = true
					stack = append(stack, d)
				}
			}
		}
		for i := range n {
			keys[i].User = mark[i]
		}
	}
	return keys
}

// ReadPriority reads a user priority list: one pkgpath (category/name) or
// PKGNAME per line; blank lines and #-comments are ignored. A name that
// matches no package of the build set is an error naming file:line.
func ReadPriority(g *Graph, r io.Reader, name string) ([]bool, error) {
	byPath := make(map[string][]int32)
	for i, p := range g.Path {
		byPath[p] = append(byPath[p], int32(i))
	}
	user := make([]bool, g.Len())
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		if k := strings.IndexByte(s, '#'); k >= 0 {
			s = s[:k]
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if i, ok := g.Lookup(s); ok {
			user[i] = true
			continue
		}
		ids, ok := byPath[s]
		if !ok {
			return nil, fmt.Errorf("%s:%d: %q is neither a pkgpath nor a PKGNAME of the build set", name, line, s)
		}
		for _, i := range ids {
			user[i] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return user, nil
}

// ReadPriorityFile is ReadPriority on a file.
func ReadPriorityFile(g *Graph, path string) ([]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("priority list: %w", err)
	}
	defer f.Close()
	return ReadPriority(g, f, path)
}

// historyRuns is how many recent successful builds of a pkgpath the
// estimate looks at: recent enough to follow a package that grew, more
// than one so that a build on a loaded machine does not dominate.
const historyRuns = 5

// HistoryDurations returns, per pkgpath, the median wall time of the last
// successful builds recorded in the database's history table. Up-to-date
// checks are not builds and are left out.
func HistoryDurations(ctx context.Context, d *sql.DB) (map[string]int64, error) {
	rows, err := d.QueryContext(ctx, `SELECT pkgpath, wall_ms FROM history WHERE state = 'done' ORDER BY pkgpath, finished_at DESC`)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer rows.Close()
	runs := make(map[string][]int64)
	for rows.Next() {
		var p string
		var ms int64
		if err := rows.Scan(&p, &ms); err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
		if len(runs[p]) < historyRuns {
			runs[p] = append(runs[p], ms)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	out := make(map[string]int64, len(runs))
	for p, v := range runs {
		out[p] = median(v)
	}
	return out, nil
}

func median(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
