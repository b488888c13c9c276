package report

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"time"
)

// location is one PKG_LOCATION as report.txt sees it.
type location struct {
	name   string
	breaks int        // sum of Breaks over its failed packages
	failed []*Package // in PKGNAME order
	others int        // packages there that did not fail
	last   *Package   // the failed package whose maintainer is shown
}

// locations groups the packages by location, visiting them in PKGNAME
// order: pbulk visits them in awk hash order, and shows for a location
// the maintainer of the last failed package it saw, which is therefore
// the failed package with the greatest PKGNAME here.
func (b *Build) locations() map[string]*location {
	locs := map[string]*location{}
	for _, p := range b.byName() {
		l := locs[p.Location]
		if l == nil {
			l = &location{name: p.Location}
			locs[p.Location] = l
		}
		if p.Status() == "failed" {
			l.breaks += p.Breaks()
			l.failed = append(l.failed, p)
			l.last = p
		} else {
			l.others++
		}
	}
	return locs
}

// topLocations returns the locations with a non-zero breaks count in
// "sort -rn" order of "count location": count descending, then (sort's
// last-resort comparison of whole lines, still reversed) location
// descending.
func topLocations(locs map[string]*location, n int) []*location {
	var top []*location
	for _, l := range locs {
		if l.breaks != 0 {
			top = append(top, l)
		}
	}
	sort.Slice(top, func(i, j int) bool {
		if top[i].breaks != top[j].breaks {
			return top[i].breaks > top[j].breaks
		}
		return top[i].name > top[j].name
	})
	if len(top) > n {
		top = top[:n]
	}
	return top
}

// WriteText writes report.txt, the mail body of create-report-txt.awk
// (rev 1.4), with its layout, typos and printf formats:
//
//   - counts of the five final pbulk statuses (open and in-processing
//     packages are in no count, as in pbulk);
//   - a location's "breaks" is the sum of PKG_DEPTH-1 over its failed
//     packages; "Most offending build failures" lists the ten locations
//     with the most, when any has some;
//   - "Build failures" lists every location with a failed package in byte
//     order, and for a location where other packages did not fail (a
//     multi-version package) the failed PKGNAMEs below it.
//
// The orders that pbulk leaves to awk's hash are PKGNAME order here; the
// order of sort(1) is byte order (the C locale).
func WriteText(w io.Writer, b *Build, loc *time.Location) error {
	t := b.TimesIn(loc)
	c := b.Counts()
	bw := bufio.NewWriter(w)
	base := b.BaseURL + "/" + t.StartDir
	fmt.Fprintf(bw, "pkgsrc bulk build report\n========================\n\n%s\nCompiler: %s\n\n", b.Platform, b.Compiler)
	fmt.Fprintf(bw, "Build start: %s\nBuild end:   %s\n\n", t.StartISO, t.EndISO)
	fmt.Fprintf(bw, "Full report: %s/meta/report.html\nMachine readable version: %s/meta/report.bz2\n\n", base, base)
	fmt.Fprintf(bw, "Total number of packages:      %5d\n", c.Total)
	fmt.Fprintf(bw, "  Succesfully built:           %5d\n", c.Done)
	fmt.Fprintf(bw, "  Failed to build:             %5d\n", c.Failed)
	fmt.Fprintf(bw, "  Depending on failed package: %5d\n", c.IndirectFailed)
	fmt.Fprintf(bw, "  Explictly broken or masked:  %5d\n", c.Prefailed)
	fmt.Fprintf(bw, "  Depending on masked package: %5d\n", c.IndirectPrefailed)
	fmt.Fprintf(bw, "\n")

	const header = "Package                               Breaks Maintainer\n" +
		"-------------------------------------------------------------------------\n"
	locs := b.locations()
	if top := topLocations(locs, 10); len(top) > 0 {
		fmt.Fprintf(bw, "Most offending build failures\n\n%s", header)
		for _, l := range top {
			fmt.Fprintf(bw, "%-37s % 6d %s\n", l.name, l.breaks, l.last.Maintainer)
		}
		fmt.Fprintf(bw, "\n")
	}
	fmt.Fprintf(bw, "Build failures\n\n%s", header)
	names := make([]string, 0, len(locs))
	for n, l := range locs {
		if len(l.failed) > 0 {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		l := locs[n]
		if l.breaks == 0 {
			fmt.Fprintf(bw, "%-44s %s\n", n, l.last.Maintainer)
		} else {
			fmt.Fprintf(bw, "%-37s % 6d %s\n", n, l.breaks, l.last.Maintainer)
		}
		if l.others == 0 {
			continue
		}
		for _, p := range l.failed {
			if p.Breaks() == 0 {
				fmt.Fprintf(bw, "    %-40s %s\n", p.Name, p.Maintainer)
			} else {
				fmt.Fprintf(bw, "    %-33s % 6d %s\n", p.Name, p.Breaks(), p.Maintainer)
			}
		}
	}
	return bw.Flush()
}
