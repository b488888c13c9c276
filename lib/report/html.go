package report

import (
	_ "embed"
	"html/template"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/sched"
)

//go:embed report.html.tmpl
var htmlText string

var htmlTmpl = template.Must(template.New("report.html").Parse(htmlText))

// maxRoots is how many root failures an indirect-failed row names
// (create-report-html.awk stops at 9 and adds "...").
const maxRoots = 9

type htmlCell struct {
	Phase string
	URL   template.URL // computed by Links, each segment escaped
}

type htmlRow struct {
	Status      string // pbulk's status (also the row's class)
	Own         string // skew or timeout
	Location    string
	LocationURL template.URL
	Name        string
	Breaks      int
	Maintainer  string
	Wall        string
	Logs        []htmlCell // phase logs in pbulk's column order, then other files
	Roots       []string
	More        bool
	ReasonLabel string
	Reason      []string
	Note        string
	DependsOn   string // the prefailed package behind an indirect-prefailed one
	NoteSpan    int
	Anchor      bool // the row carries id="pkg-<PKGNAME>" for links to it
}

type htmlData struct {
	Platform, Compiler, Start, End string
	Counts                         Counts
	Builders                       []htmlBuilder
	Top, Rows                      []htmlRow
}

type htmlBuilder struct {
	BuilderStats
	Busy string
}

// WriteHTML writes report.html: the counts, the ten failed packages that
// break the most others, and every package that is not done, sorted by
// location then PKGNAME (create-report-html.awk rev 1.15's content, as
// valid HTML5 with a style sheet and no scripts or external resources).
// Each row has the package's location (linked to its last log, as pbulk
// does), PKGNAME, breaks (PKG_DEPTH-1, blank when 0), maintainer, status,
// wall time of the last build and, in one cell, a link per phase log in
// pbulk's column order (pre-clean ... deinstall; pbulk gives each its own
// column), then the other files of the log directory such as work.log
// (FindLogs fills them). Rows of the full list carry id="pkg-<PKGNAME>",
// and root failures link to them. A second line gives the
// why: up to nine root failures of an indirect-failed package, the
// PKG_SKIP_REASON or PKG_FAIL_REASON of a prefailed one (quotes removed,
// words outside quotes on separate lines, as pbulk prints them; pbulk
// shows only the fail reason), the prefailed package behind an
// indirect-prefailed one, and pkgsched's detail (failed phase, skew or
// timeout message) of a failed one, with the builder of its last attempt
// and the MAKE_JOBS it was given. A table of builders (BuilderStats)
// follows the counts. Every value is HTML-escaped.
func WriteHTML(w io.Writer, b *Build, loc *time.Location) error {
	t := b.TimesIn(loc)
	data := htmlData{
		Platform: b.Platform, Compiler: b.Compiler, Start: t.StartISO, End: t.EndISO,
		Counts: b.Counts(),
	}
	for _, s := range b.Builders {
		data.Builders = append(data.Builders, htmlBuilder{BuilderStats: s, Busy: wall(s.BusyMS)})
	}
	var top []*Package
	var all []*Package
	for _, p := range b.Packages {
		if p.Status() == "failed" && p.Breaks() > 0 {
			top = append(top, p)
		}
		if p.Status() != "done" {
			all = append(all, p)
		}
	}
	// sort -rn on "breaks pkgname": ties in reverse name order.
	sort.Slice(top, func(i, j int) bool {
		if top[i].Breaks() != top[j].Breaks() {
			return top[i].Breaks() > top[j].Breaks()
		}
		return top[i].Name > top[j].Name
	})
	if len(top) > 10 {
		top = top[:10]
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Location != all[j].Location {
			return all[i].Location < all[j].Location
		}
		return all[i].Name < all[j].Name
	})
	for _, p := range top {
		data.Top = append(data.Top, b.htmlRow(p))
	}
	for _, p := range all {
		r := b.htmlRow(p)
		r.Anchor = true
		data.Rows = append(data.Rows, r)
	}
	return htmlTmpl.Execute(w, data)
}

func (b *Build) htmlRow(p *Package) htmlRow {
	r := htmlRow{
		Status: p.Status(), Location: p.Location, Name: p.Name, Breaks: p.Breaks(),
		Maintainer: p.Maintainer, NoteSpan: 6,
	}
	if p.State == sched.Skew || p.State == sched.Timeout {
		r.Own = string(p.State)
	}
	if p.WallMS >= 0 {
		r.Wall = wall(p.WallMS)
	}
	if r.Status == "failed" {
		if l := p.LastLog(); l != nil {
			r.LocationURL = template.URL(l.URL)
		}
	}
	for _, l := range p.Logs {
		r.Logs = append(r.Logs, htmlCell{Phase: l.Phase, URL: template.URL(l.URL)})
	}
	switch p.State {
	case sched.IndirectFailed:
		for i, root := range b.RootFailures(p) {
			if i == maxRoots {
				r.More = true
				break
			}
			r.Roots = append(r.Roots, root.Name)
		}
		if len(r.Roots) == 0 && p.Detail != "" {
			r.Roots = []string{p.Detail}
		}
	case sched.Prefailed:
		switch {
		case p.SkipReason != "":
			r.ReasonLabel, r.Reason = "PKG_SKIP_REASON:", Reason(p.SkipReason)
		case p.FailReason != "":
			r.ReasonLabel, r.Reason = "PKG_FAIL_REASON:", Reason(p.FailReason)
		default:
			r.Note = p.Detail
		}
	case sched.IndirectPrefailed:
		if p.Detail != "" {
			r.DependsOn = p.Detail
		}
	case sched.Skew:
		r.Note = "version skew: " + p.Detail
	case sched.Timeout:
		r.Note = "timed out"
		if p.Detail != "" {
			r.Note += " in " + p.Detail
		}
	case sched.Failed:
		r.Note = p.Detail
		if res := p.Result; res != nil && res.FailedPhase != "" {
			r.Note = "failed in " + res.FailedPhase
			if res.Message != "" {
				r.Note += ": " + res.Message
			}
		}
	}
	if r.Note != "" && p.Worker != "" {
		// Which builder failed it, and with how many cores: a failure
		// only one machine or only parallel makes is told apart here.
		on := "on " + p.Worker
		if p.Result != nil && p.Result.MakeJobs > 0 {
			on += ", MAKE_JOBS=" + strconv.Itoa(p.Result.MakeJobs)
		}
		r.Note += " (" + on + ")"
	}
	return r
}

// wall formats milliseconds as 1h02m03s, 2m05s or 7.3s.
func wall(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m" + pad2(int(d%time.Minute/time.Second)) + "s"
	}
	return strconv.Itoa(int(d/time.Hour)) + "h" + pad2(int(d%time.Hour/time.Minute)) + "m" + pad2(int(d%time.Minute/time.Second)) + "s"
}

func pad2(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}
