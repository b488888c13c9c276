package sched

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/db"
)

// Graph is the build set: the selected packages in presolve order and their
// dependency edges. Nodes are indexes 0..Len()-1.
type Graph struct {
	ID   []int64  // packages.id (for a presolve file: 1-based record number)
	Name []string // PKGNAME
	Path []string // PKG_LOCATION
	Deps [][]int32
	// Dependents lists, per node, the nodes that depend on it directly in
	// pbulk's order: the reverse of the order the dependents were read,
	// which is the order pbulk releases them in.
	Dependents [][]int32
	OwnWeight  []int64  // PBULK_WEIGHT (100 when absent)
	Weight     []int64  // PBULK_WEIGHT summed over the node and its transitive dependents
	Initial    []State  // open, prefailed or indirect-prefailed
	Reason     []string // why a package starts prefailed or indirect-prefailed (pkgdag's initial_detail)

	byName map[string]int32
}

// Len is the number of packages.
func (g *Graph) Len() int { return len(g.Name) }

// Lookup finds a node by PKGNAME.
func (g *Graph) Lookup(name string) (int32, bool) {
	i, ok := g.byName[name]
	return i, ok
}

func (g *Graph) add(id int64, name, path string, own int64, initial State, reason string) int32 {
	i := int32(len(g.Name))
	g.ID = append(g.ID, id)
	g.Name = append(g.Name, name)
	g.Path = append(g.Path, path)
	g.OwnWeight = append(g.OwnWeight, own)
	g.Initial = append(g.Initial, initial)
	g.Reason = append(g.Reason, reason)
	g.Deps = append(g.Deps, nil)
	if g.byName == nil {
		g.byName = make(map[string]int32)
	}
	g.byName[name] = i
	return i
}

// finish builds the dependents lists and checks that the graph is acyclic.
func (g *Graph) finish() error {
	g.Dependents = make([][]int32, g.Len())
	for i := g.Len() - 1; i >= 0; i-- {
		for _, d := range g.Deps[i] {
			g.Dependents[d] = append(g.Dependents[d], int32(i))
		}
	}
	_, err := g.topo()
	return err
}

// topo returns the nodes with every dependent before its dependencies.
func (g *Graph) topo() ([]int32, error) {
	n := g.Len()
	left := make([]int32, n) // dependents not yet emitted
	for i := range n {
		left[i] = int32(len(g.Dependents[i]))
	}
	order := make([]int32, 0, n)
	for i := range n {
		if left[i] == 0 {
			order = append(order, int32(i))
		}
	}
	for k := 0; k < len(order); k++ {
		for _, d := range g.Deps[order[k]] {
			if left[d]--; left[d] == 0 {
				order = append(order, d)
			}
		}
	}
	if len(order) != n {
		var cyc []string
		for i := range n {
			if left[i] > 0 && len(cyc) < 10 {
				cyc = append(cyc, g.Name[i])
			}
		}
		return nil, fmt.Errorf("cyclic dependency among packages: %s", strings.Join(cyc, " "))
	}
	return order, nil
}

// computeWeights fills Weight with pbulk's priority: the PBULK_WEIGHT of
// the node plus that of every distinct transitive dependent. It needs the
// set of dependents per node (n² bits, about 100 MB for the whole tree),
// so LoadGraph takes the weight pkgdag stored instead.
func (g *Graph) computeWeights() error {
	order, err := g.topo()
	if err != nil {
		return err
	}
	n := g.Len()
	words := (n + 63) / 64
	sets := make([][]uint64, n)
	g.Weight = make([]int64, n)
	for _, i := range order {
		s := make([]uint64, words)
		s[i/64] |= 1 << (uint(i) % 64)
		for _, d := range g.Dependents[i] {
			for w, v := range sets[d] {
				s[w] |= v
			}
		}
		sets[i] = s
		var sum int64
		for w, v := range s {
			for v != 0 {
				b := bits.TrailingZeros64(v)
				sum += g.OwnWeight[w*64+b]
				v &= v - 1
			}
		}
		g.Weight[i] = sum
	}
	return nil
}

// LoadGraph reads the selected packages and their edges from the build
// database. Edges to packages outside the selection are ignored: pkgdag's
// selection is closed under dependencies, so there are none unless the
// database was edited by hand.
func LoadGraph(ctx context.Context, d *sql.DB) (*Graph, error) {
	g := &Graph{}
	rows, err := d.QueryContext(ctx, `SELECT id, pkgname, pkgpath, pbulk_weight, weight, initial_state, initial_detail
		FROM packages WHERE selected = 1 ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read packages: %w", err)
	}
	defer rows.Close()
	byID := make(map[int64]int32)
	for rows.Next() {
		var id, own, weight int64
		var name, path, initial, reason string
		if err := rows.Scan(&id, &name, &path, &own, &weight, &initial, &reason); err != nil {
			return nil, fmt.Errorf("read packages: %w", err)
		}
		st, err := ParseState(initial)
		if err != nil || (st != Open && st != Prefailed && st != IndirectPrefailed) {
			return nil, fmt.Errorf("package %s (id %d): bad initial_state %q", name, id, initial)
		}
		byID[id] = g.add(id, name, path, own, st, reason)
		g.Weight = append(g.Weight, weight)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read packages: %w", err)
	}
	rows.Close()
	err = db.Depends(ctx, d, func(p, dep int64) {
		pi, ok1 := byID[p]
		di, ok2 := byID[dep]
		// A package that starts prefailed is never built, so its own
		// dependencies do not matter; dropping them also drops the
		// dependency cycles pkgdag marked prefailed.
		if ok1 && ok2 && g.Initial[pi] == Open {
			g.Deps[pi] = append(g.Deps[pi], di)
		}
	})
	if err != nil {
		return nil, err
	}
	if err := g.finish(); err != nil {
		return nil, fmt.Errorf("build database: %w", err)
	}
	return g, nil
}

// ParsePresolve reads pbulk-resolve output (or pkgdag's identical
// presolve output): records opened by PKGNAME=, with PKG_LOCATION,
// PKG_SKIP_REASON, PKG_FAIL_REASON, PBULK_WEIGHT and DEPENDS. name is used
// in errors. It computes pbulk's weights itself.
func ParsePresolve(r io.Reader, name string) (*Graph, error) {
	g := &Graph{}
	type rec struct {
		deps []string
		line int
	}
	var recs []rec
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	cur := int32(-1)
	var skip, fail string
	flush := func() {
		if cur < 0 {
			return
		}
		if skip != "" {
			g.Initial[cur], g.Reason[cur] = Prefailed, skip
		} else if fail != "" {
			g.Initial[cur], g.Reason[cur] = Prefailed, fail
		}
	}
	for sc.Scan() {
		line++
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: not a VAR=value line", name, line)
		}
		if k == "PKGNAME" {
			flush()
			if _, dup := g.byName[v]; dup {
				return nil, fmt.Errorf("%s:%d: duplicate PKGNAME %s", name, line, v)
			}
			cur = g.add(int64(len(g.Name)+1), v, "", 100, Open, "")
			recs = append(recs, rec{line: line})
			skip, fail = "", ""
			continue
		}
		if cur < 0 {
			return nil, fmt.Errorf("%s:%d: %s before the first PKGNAME", name, line, k)
		}
		switch k {
		case "PKG_LOCATION":
			g.Path[cur] = v
		case "PKG_SKIP_REASON":
			skip = v
		case "PKG_FAIL_REASON":
			fail = v
		case "PBULK_WEIGHT":
			if w, err := strconv.ParseInt(v, 10, 64); err == nil && w >= 0 {
				g.OwnWeight[cur] = w
			}
		case "DEPENDS":
			recs[cur].deps = strings.Fields(v)
			recs[cur].line = line
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line, err)
	}
	flush()
	for i, rc := range recs {
		for _, dn := range rc.deps {
			d, ok := g.byName[dn]
			if !ok {
				return nil, fmt.Errorf("%s:%d: package %s: dependency %s does not exist", name, rc.line, g.Name[i], dn)
			}
			g.Deps[i] = append(g.Deps[i], d)
		}
	}
	if err := g.finish(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := g.computeWeights(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return g, nil
}
