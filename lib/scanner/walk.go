package scanner

import (
	"context"
	"fmt"
	"sync"
)

// walk enumerates the whole tree (spec §2.1): categories from the root's
// SUBDIR, then each category's SUBDIR, in order. Categories are listed in
// parallel; the order of the result does not depend on it. failed counts
// categories that could not be listed; cached says no make ran at all.
func (s *scanner) walk(ctx context.Context) (locs []string, failed int, cached bool, err error) {
	cats, rootCached, ok := s.subdirs(ctx, "")
	if !ok {
		return nil, 0, false, fmt.Errorf("Cannot extract categories (%s show-subdir-var VARNAME=SUBDIR in %s failed)", s.cfg.Make, s.cfg.Pkgsrc)
	}
	type catResult struct {
		words  []string
		ok     bool
		cached bool
	}
	s.cats.Store(int64(len(cats)))
	res := make([]catResult, len(cats))
	sem := make(chan struct{}, s.cfg.Jobs)
	var wg sync.WaitGroup
	for i, c := range cats {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			w, cached, ok := s.subdirs(ctx, c)
			res[i] = catResult{w, ok, cached}
			s.walked.Add(1)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, 0, false, err
	}
	cached = rootCached
	for i, c := range cats {
		r := res[i]
		cached = cached && r.cached
		if !r.ok {
			s.log.warn(fmt.Sprintf("Cannot extract subdirectories for %s", c))
			failed++
			continue
		}
		for _, d := range r.words {
			locs = append(locs, c+"/"+d)
		}
	}
	return locs, failed, cached, nil
}

// subdirs runs show-subdir-var in the root (cat == "") or a category, or
// takes its words from the cache when nothing make read for it changed.
func (s *scanner) subdirs(ctx context.Context, cat string) (words []string, cached, ok bool) {
	dir := s.cfg.Pkgsrc
	if cat != "" {
		dir += "/" + cat
	}
	if w := s.cachedWalk(cat); w != nil {
		listing := listingHash(dir)
		if listing != "" && listing == w.Listing && s.cache.filesUnchanged(s.memo, w.Makefiles) {
			if s.builder != nil {
				paths := make([]string, len(w.Makefiles))
				for i, d := range w.Makefiles {
					paths[i] = s.cache.Files[d].Path
				}
				if idx, ok := s.builder.fileIndexes(paths, maxTime, s.knownState); ok {
					s.builder.setWalk(cat, &cacheWalk{Makefiles: idx, Listing: listing, Words: w.Words})
				}
			}
			return w.Words, true, true
		}
	}
	listing := ""
	if s.builder != nil {
		listing = listingHash(dir)
	}
	s.makeRuns.Add(1)
	m := runMake(ctx, s.cfg.Make, dir, "show-subdir-var", "VARNAME=SUBDIR")
	if m.fail != "" {
		s.log.warn(fmt.Sprintf("%s (in %s)", m.fail, dir))
		for _, l := range splitLines(lastLines(m.stderr, StderrTailLines)) {
			s.log.detail("  | " + l)
		}
		return nil, false, false
	}
	words = subdirWords(m.out)
	if s.builder != nil && listing != "" {
		// What make read for SUBDIR: asked separately so that the
		// show-subdir-var run stays exactly pbulk's command.
		s.makeRuns.Add(1)
		mf := runMake(ctx, s.cfg.Make, dir, "-V", ".MAKE.MAKEFILES", "VARNAME=SUBDIR")
		if mf.fail == "" {
			var paths []string
			for _, f := range subdirWords(mf.out) {
				paths = append(paths, resolveMakefile(dir, f))
			}
			if idx, ok := s.builder.fileIndexes(paths, m.start.Add(-sinceMargin).UnixNano(), s.memo.hashed); ok && len(paths) > 0 {
				s.builder.setWalk(cat, &cacheWalk{Makefiles: idx, Listing: listing, Words: words})
			}
		}
	}
	return words, false, true
}

func (s *scanner) cachedWalk(cat string) *cacheWalk {
	if s.cache == nil || s.cache.Tree == nil {
		return nil
	}
	if cat == "" {
		return s.cache.Tree.Root
	}
	return s.cache.Tree.Categories[cat]
}

func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	var out []string
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	if start < len(b) {
		out = append(out, string(b[start:]))
	}
	return out
}
