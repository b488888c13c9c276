package schedcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/report"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
)

// ReportCmd is pkgsched report.
type ReportCmd struct {
	DB         string `name:"db" required:"" type:"existingfile" placeholder:"FILE" help:"Build database."`
	Output     string `short:"o" required:"" placeholder:"DIR" help:"Directory to write the report files into (pbulk's meta directory); created if missing."`
	Store      string `placeholder:"URL" help:"Package store (file://, sftp://, s3://): list bulklog/<PKGNAME>/ there for the logs to link; without it, the logs named in pkgrun's results."`
	BaseURL    string `name:"base-url" placeholder:"URL" help:"pbulk's base_url: report.txt links to URL/<BUILD_START_DIR>/meta/report.html."`
	LogURLBase string `name:"log-url-base" placeholder:"URL" help:"Where the logs are published: links become URL/<PKGNAME>/<phase>.log. Default: a relative path into a local store, else pbulk's ../<PKGNAME>/<phase>.log."`
	Platform   string `placeholder:"TEXT" help:"PLATFORM line (pbulk: 'OPSYS OS_VERSION/MACHINE_ARCH'); default from uname of this host."`
	Compiler   string `placeholder:"TEXT" help:"COMPILER line (PKGSRC_COMPILER, e.g. gcc)."`
	UTC        bool   `name:"utc" help:"Write times in UTC instead of local time (pbulk uses the local time of date(1))."`
	JSON       bool   `name:"json" help:"Print the directory, the files written, the counts and the builders (jobs, built, failed, lost, crashed per builder) as JSON on stdout."`

	Access job.StoreAccess `embed:"" group:"Store access"`
}

// Help is pkgsched report's long help.
func (c *ReportCmd) Help() string {
	return `Writes into DIR what pbulk's report phase leaves in its meta directory:
report and report.bz2 (every selected package's presolve record with
PKG_DEPTH= and BUILD_STATUS=, sorted by PKGNAME; skew and timeout are
BUILD_STATUS=failed plus PKGBULK_STATUS=skew|timeout), pbuild
(PKGNAME|STATUS||DEPTH), success and error (PKGNAME lists, as pbulk-build
writes them), status (BUILD_START_*, BUILD_END_*, PLATFORM, COMPILER,
BASE_URL), report.txt (pbulk's mail body, byte for byte), report.html
(every unsuccessful package with links to its logs, the builder and
MAKE_JOBS of a failed one, and per builder the jobs it built, failed,
lost and crashed) and report.dot (the
graph of failures; render it with Graphviz: neato -Tsvg). Each file is replaced
atomically, and only once all of them were written.

The report can be written at any time; while packages are still open the
status file has no BUILD_END lines and they are counted apart. The database
is only read (a read-only file or file system will do).

With --store, the logs are found by listing the store. A store that cannot
be reached or listed, a file store whose directory does not exist, or a
store that holds none of the logs pkgrun says it stored (the wrong store)
stops the report with exit 2: links are never dropped silently. When only
some packages' logs are missing, their rows have no links and a warning
names them.

Exit codes: 0 written, 2 bad usage, unreadable database, an unreachable or
wrong store, or an I/O error; nothing is written then.`
}

// Run writes the report.
func (c *ReportCmd) Run(ctx context.Context, g *cli.Globals) error {
	d, err := db.OpenReadOnly(ctx, c.DB)
	if err != nil {
		return err
	}
	defer d.Close()
	b, err := report.Load(ctx, d)
	if err != nil {
		return fmt.Errorf("%s: %w", c.DB, err)
	}
	b.Platform, b.Compiler, b.BaseURL = c.Platform, c.Compiler, strings.TrimSuffix(c.BaseURL, "/")
	if b.Platform == "" {
		b.Platform = hostPlatform()
	}
	out, err := filepath.Abs(c.Output)
	if err != nil {
		return err
	}
	links := report.Links{URLBase: c.LogURLBase, ReportDir: out}
	var st store.Store
	if c.Store != "" {
		links.StoreDir = localStoreDir(c.Store)
		if dir := links.StoreDir; dir != "" {
			// Opening a file store makes its directory: a store that
			// is not there (a typo, an unmounted file system) would
			// look empty.
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return fmt.Errorf("package store %s: %s is not a directory (not mounted?); cannot find the logs", c.Store, dir)
			}
		}
		if st, err = storeopen.Open(ctx, c.Store, storeopen.Options{StoreAccess: c.Access}); err != nil {
			return err // names the store
		}
		defer st.Close()
	}
	if err := report.FindLogs(ctx, b, st, links); err != nil {
		return err
	}
	if st != nil {
		if want, missing := report.StoredLogs(b); len(missing) > 0 {
			names := make([]string, 0, 5)
			for _, p := range missing[:min(len(missing), 5)] {
				names = append(names, p.Name)
			}
			list := strings.Join(names, ", ")
			if len(missing) > len(names) {
				list += ", ..."
			}
			if len(missing) == want {
				return fmt.Errorf("package store %s holds none of the logs pkgrun stored for %d packages (%s): the wrong store, or it cannot be read from here; no report written", st, want, list)
			}
			fmt.Fprintf(g.Stderr, "pkgsched: warning: package store %s lacks the logs pkgrun stored for %d of %d packages (%s): their rows have no log links\n", st, len(missing), want, list)
		}
	}
	loc := time.Local
	if c.UTC {
		loc = time.UTC
	}
	if err := report.WriteDir(ctx, out, d, b, loc); err != nil {
		return err
	}
	cnt := b.Counts()
	if c.JSON {
		files := make([]string, len(report.Files))
		for i, f := range report.Files {
			files[i] = filepath.Join(out, f)
		}
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"dir": out, "files": files, "counts": cnt, "builders": b.Builders})
	}
	fmt.Fprintf(g.Stderr, "pkgsched: report of %d packages (%d done, %d failed, %d indirect-failed, %d prefailed, %d indirect-prefailed) written to %s\n",
		cnt.Total, cnt.Done, cnt.Failed, cnt.IndirectFailed, cnt.Prefailed, cnt.IndirectPrefailed, out)
	return nil
}

// localStoreDir returns the directory of a file store URL (or plain path),
// "" for remote stores.
func localStoreDir(s string) string {
	if !strings.Contains(s, ":") {
		abs, err := filepath.Abs(s)
		if err != nil {
			return ""
		}
		return abs
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "file" || (u.Host != "" && u.Host != "localhost") || !filepath.IsAbs(u.Path) {
		return ""
	}
	return filepath.Clean(u.Path)
}

// hostPlatform is pbulk's PLATFORM (OPSYS OS_VERSION/MACHINE_ARCH) as
// uname(2) of this host tells it.
func hostPlatform() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:]) + "/" + unix.ByteSliceToString(u.Machine[:])
}
