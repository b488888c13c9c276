package report

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

// Phases are pkg-build's logged phases in the order of report.html's log
// columns (create-report-html.awk).
var Phases = []string{"pre-clean", "depends", "checksum", "configure", "build", "install", "package", "clean", "deinstall"}

// lastLogOrder is the order in which pbulk picks the log a failed row's
// location links to: the first that exists.
var lastLogOrder = []string{"deinstall", "clean", "package", "install", "build", "configure", "checksum", "depends", "pre-clean"}

// Log is one file in a package's log directory.
type Log struct {
	Phase string // the file name without .log: the phase, or work, pkg-build...
	Name  string // store name, e.g. bulklog/foo-1.0/build.log
	URL   string // link from the report directory
}

// Links says where report.html's log links point. The first that applies:
//
//   - URLBase: URLBase/<PKGNAME>/<file>, for logs published anywhere;
//   - StoreDir (a local file store) and ReportDir: a relative path from
//     the report directory to the log in the store;
//   - otherwise pbulk's own link, ../<PKGNAME>/<file>: right when the
//     logs are published beside the meta directory, as pbulk's report
//     script uploads them.
type Links struct {
	URLBase   string
	StoreDir  string // absolute
	ReportDir string // absolute
}

func (l Links) url(pkgname, name string) string {
	file := path.Base(name)
	switch {
	case l.URLBase != "":
		return strings.TrimSuffix(l.URLBase, "/") + "/" + url.PathEscape(pkgname) + "/" + url.PathEscape(file)
	case l.StoreDir != "" && l.ReportDir != "":
		rel, err := filepath.Rel(l.ReportDir, filepath.Join(l.StoreDir, filepath.FromSlash(name)))
		if err == nil {
			return escapePath(filepath.ToSlash(rel))
		}
	}
	return "../" + url.PathEscape(pkgname) + "/" + url.PathEscape(file)
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// FindLogs fills the Logs of every package that is not done. With a
// store, the logs are what bulklog/<PKGNAME>/ holds (one listing of
// bulklog/); without one, the phases' logs named in pkgrun's result.
func FindLogs(ctx context.Context, b *Build, st store.Store, links Links) error {
	names := map[string][]string{}
	if st != nil {
		want := map[string]bool{}
		for _, p := range b.Packages {
			if p.Status() != "done" {
				want[p.Name] = true
			}
		}
		err := st.List(ctx, "bulklog/", func(info store.Info) error {
			rest := strings.TrimPrefix(info.Name, "bulklog/")
			pkg, file, ok := strings.Cut(rest, "/")
			if ok && want[pkg] && file != "" && !strings.Contains(file, "/") {
				names[pkg] = append(names[pkg], info.Name)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("list logs in %s: %w", st, err)
		}
	} else {
		for _, p := range b.Packages {
			if p.Result == nil || p.Status() == "done" {
				continue
			}
			for _, ph := range p.Result.Phases {
				if ph.Log != "" {
					names[p.Name] = append(names[p.Name], ph.Log)
				}
			}
		}
	}
	rank := map[string]int{}
	for i, ph := range Phases {
		rank[ph] = i
	}
	for _, p := range b.Packages {
		p.Logs = nil
		for _, n := range names[p.Name] {
			file := path.Base(n)
			phase := strings.TrimSuffix(file, ".log")
			p.Logs = append(p.Logs, Log{Phase: phase, Name: n, URL: links.url(p.Name, n)})
		}
		sort.Slice(p.Logs, func(i, j int) bool {
			ri, oki := rank[p.Logs[i].Phase]
			rj, okj := rank[p.Logs[j].Phase]
			switch {
			case oki && okj:
				return ri < rj
			case oki != okj:
				return oki
			}
			return p.Logs[i].Phase < p.Logs[j].Phase
		})
	}
	return nil
}

// log returns p's log of phase, or nil.
func (p *Package) log(phase string) *Log {
	for i := range p.Logs {
		if p.Logs[i].Phase == phase {
			return &p.Logs[i]
		}
	}
	return nil
}

// LastLog is the log a failed package's location links to in pbulk's
// report.html: the latest phase that has a log; nil when none.
func (p *Package) LastLog() *Log {
	for _, ph := range lastLogOrder {
		if l := p.log(ph); l != nil {
			return l
		}
	}
	return nil
}

// StoredLogs reports, after FindLogs with a store, which packages' logs
// the store should hold: those not done whose pkgrun result says it
// stored logs (a log directory or phase logs). missing are those of them
// for which the store listing found no log at all. All of them missing
// means the store is not the one the builders wrote to, or cannot be read
// from here.
func StoredLogs(b *Build) (expected int, missing []*Package) {
	for _, p := range b.Packages {
		if p.Status() == "done" || p.Result == nil {
			continue
		}
		named := p.Result.LogDir != ""
		for _, ph := range p.Result.Phases {
			named = named || ph.Log != ""
		}
		if !named {
			continue
		}
		expected++
		if len(p.Logs) == 0 {
			missing = append(missing, p)
		}
	}
	return expected, missing
}
