package distfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

// Needed is one distfile a build needs.
type Needed struct {
	Name     string   `json:"name"`
	Size     int64    `json:"size"` // -1: distinfo has no Size
	Packages []string `json:"packages"`
	// Status: present (in the store with the right size), missing,
	// wrong-size (in the store, but not this file: a builder will delete
	// it), or conflict (packages' distinfo files disagree about it).
	Status string            `json:"status"`
	Sums   map[string]string `json:"digests"`
}

// Package is one package of a build: its PKGNAME and PKG_LOCATION.
type Package struct{ Name, Location string }

// List reads the distinfo of every package's location in tree (without
// make: every distfile distinfo names, which may be more than the
// package's options need) and, when st is not nil, lists the store's
// distfiles/ once to say which are present. The result is sorted by
// name.
func List(ctx context.Context, tree string, pkgs []Package, st store.Store) ([]Needed, error) {
	byName := map[string]*Needed{}
	for _, p := range pkgs {
		loc := filepath.Clean(filepath.FromSlash(p.Location))
		if filepath.IsAbs(loc) || loc == ".." || strings.HasPrefix(loc, ".."+string(filepath.Separator)) {
			return nil, fmt.Errorf("%s: PKG_LOCATION %q leaves the tree", p.Name, p.Location)
		}
		file := filepath.Join(tree, loc, "distinfo")
		di, err := ReadFile(file)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range di.Distfiles() {
			n := byName[e.Name]
			if n == nil {
				n = &Needed{Name: e.Name, Size: e.Size, Sums: e.Sums}
				byName[e.Name] = n
			} else if !sameFile(*n, e) {
				n.Status = "conflict"
			}
			if len(n.Packages) == 0 || n.Packages[len(n.Packages)-1] != p.Name {
				n.Packages = append(n.Packages, p.Name)
			}
		}
	}
	out := make([]Needed, 0, len(byName))
	for _, n := range byName {
		sort.Strings(n.Packages)
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if st == nil {
		return out, nil
	}
	have := map[string]int64{}
	err := st.List(ctx, Prefix, func(i store.Info) error {
		have[strings.TrimPrefix(i.Name, Prefix)] = i.Size
		return nil
	})
	if err != nil && !store.IsNotExist(err) {
		return nil, fmt.Errorf("list %s in %s: %w", Prefix, st, err)
	}
	for i := range out {
		n := &out[i]
		if n.Status == "conflict" {
			continue
		}
		size, ok := have[n.Name]
		switch {
		case !ok:
			n.Status = "missing"
		case n.Size >= 0 && size != n.Size:
			n.Status = "wrong-size"
		default:
			n.Status = "present"
		}
	}
	return out, nil
}

func sameFile(n Needed, e Entry) bool {
	if n.Size != e.Size {
		return false
	}
	for alg, v := range e.Sums {
		if w, ok := n.Sums[alg]; ok && w != v {
			return false
		}
	}
	return true
}
