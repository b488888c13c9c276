package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/pattern"
	"github.com/pkgbulk/pkgbulk/lib/proc"
	"github.com/pkgbulk/pkgbulk/lib/sandbox"
	"github.com/pkgbulk/pkgbulk/lib/store"
)

// installDepends is the depends phase: it fetches every DEPENDS package
// from the store's All/ into deps/, then, as pkg_add does, the run-time
// dependencies of those (their @pkgdep patterns, recursively) that no
// fetched package satisfies, picking the best match among the store's
// packages with pkg_install's rules; then it installs them all into the
// prefix, the DEPENDS packages first, in DEPENDS order.
//
// pbulk's DEPENDS lists direct dependencies only, so a build that needs a
// dependency's dependency (exfetch needs exlog through exconf in the
// example tree) relies on this closure.
func (r *run) installDepends(ctx context.Context, p *phaseRun) (bool, error) {
	j := r.job
	if len(j.Depends) == 0 {
		fmt.Fprintf(p.log, "pkgrun: %s has no dependencies\n", j.PkgName)
		return true, nil
	}
	// Fetching from a slow store counts against the wall-time limit too.
	outer := ctx
	if !r.deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, r.deadline)
		defer cancel()
	}
	ok, err := r.fetchAndInstall(ctx, p)
	if err != nil && outer.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		p.why = proc.WallTime
		p.msg = fmt.Sprintf("%s: wall-time limit reached while installing dependencies: %v", j.PkgName, err)
		fmt.Fprintf(p.log, "pkgrun: %s\n", p.msg)
		return false, nil
	}
	return ok, err
}

func (r *run) fetchAndInstall(ctx context.Context, p *phaseRun) (bool, error) {
	j := r.job
	var names []string // fetched, in install order
	files := map[string]string{}
	fetch := func(dep, why string) (bool, error) {
		name := "All/" + dep + r.suffix()
		local := filepath.Join(r.depsdir, dep+r.suffix())
		fmt.Fprintf(p.log, "pkgrun: fetching %s from %s%s\n", name, r.Store, why)
		if err := r.getFile(ctx, name, local); err != nil {
			if store.IsNotExist(err) {
				p.msg = fmt.Sprintf("%s: dependency %s is not in the store %s (%s missing)", j.PkgName, dep, r.Store, name)
				fmt.Fprintf(p.log, "pkgrun: %s\n", p.msg)
				return false, nil
			}
			return false, err
		}
		names = append(names, dep)
		files[dep] = local
		return true, nil
	}
	for _, dep := range j.Depends {
		if files[dep] != "" {
			continue
		}
		if ok, err := fetch(dep, ""); !ok || err != nil {
			return ok, err
		}
	}

	// The run-time closure.
	var available []string // the store's package names, listed once
	listed := false
	for i := 0; i < len(names); i++ {
		pkg := names[i]
		f, err := os.Open(files[pkg])
		if err != nil {
			return false, err
		}
		meta, err := readMeta(files[pkg], f)
		f.Close()
		if err != nil {
			p.msg = fmt.Sprintf("%s: dependency %s: %v", j.PkgName, pkg, err)
			fmt.Fprintf(p.log, "pkgrun: %s\n", p.msg)
			return false, nil
		}
		for _, pat := range plistValues(parsePlist(meta["+CONTENTS"]), "pkgdep") {
			cp, err := pattern.Compile(pat)
			if err != nil {
				p.msg = fmt.Sprintf("%s: dependency %s has an invalid @pkgdep %q: %v", j.PkgName, pkg, pat, err)
				return false, nil
			}
			if slices.ContainsFunc(names, cp.MatchPkgInstall) {
				continue
			}
			if !listed {
				if available, err = r.listPackages(ctx); err != nil {
					return false, err
				}
				listed = true
			}
			best, ok := cp.BestPkgInstall(available)
			if !ok {
				p.msg = fmt.Sprintf("%s: run-time dependency %q of %s matches no package in %s/All", j.PkgName, pat, pkg, r.Store)
				fmt.Fprintf(p.log, "pkgrun: %s\n", p.msg)
				return false, nil
			}
			if ok, err := fetch(best, fmt.Sprintf(" (for %s of %s)", pat, pkg)); !ok || err != nil {
				return ok, err
			}
		}
	}

	var failed error
	if r.box.pkgAdd != "" {
		// pkg_add installs the closure itself from PKG_PATH.
		var direct []string
		for _, dep := range j.Depends {
			direct = append(direct, boxDeps+"/"+filepath.Base(files[dep]))
		}
		failed = r.pkgAdd(ctx, p, direct...)
	} else {
		var all []string
		for _, n := range names {
			all = append(all, boxDeps+"/"+filepath.Base(files[n]))
		}
		failed = r.pkgAdd(ctx, p, all...)
	}
	if errors.Is(failed, sandbox.ErrSetup) || ctx.Err() != nil {
		return false, failed
	}
	if failed != nil {
		p.why = r.lastWhy
		p.msg = fmt.Sprintf("%s: installing dependencies failed: %v", j.PkgName, failed)
		fmt.Fprintf(p.log, "pkgrun: %v\n", failed)
		return false, nil
	}
	return true, nil
}

// listPackages returns the names of the packages in the store's All/.
func (r *run) listPackages(ctx context.Context) ([]string, error) {
	var out []string
	err := r.Store.List(ctx, "All/", func(i store.Info) error {
		base := strings.TrimPrefix(i.Name, "All/")
		if n, ok := strings.CutSuffix(base, r.suffix()); ok && !strings.Contains(n, "/") {
			out = append(out, n)
		}
		return nil
	})
	if err != nil && !store.IsNotExist(err) {
		return nil, fmt.Errorf("list All/ in %s: %w", r.Store, err)
	}
	sort.Strings(out)
	return out, nil
}
