package schedcmd

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/statuspage"
)

// ServeCmd is pkgsched serve: the live status page.
type ServeCmd struct {
	DB        string `name:"db" required:"" type:"existingfile" placeholder:"FILE" help:"Build database."`
	Listen    string `default:"127.0.0.1:8080" placeholder:"ADDR" help:"Address to listen on, host:port (default ${default}; port 0 picks one). On a loopback address without a token, requests naming other hosts are refused."`
	TokenFile string `type:"existingfile" placeholder:"FILE" help:"File holding a token every request must present: open the page once as /?token=TOKEN (it becomes a cookie), scripts send Authorization: Bearer TOKEN."`
	WorkRoot  string `placeholder:"DIR" help:"pkgrun's work root, for the running jobs' logs (default: from the settings file of the pkgsched run on this database)."`
	Store     string `placeholder:"URL" help:"Package store, for links to failed packages' logs when it is a file:// store (default: as for --work-root)."`

	mu   sync.Mutex
	last job.Settings // of the newest run seen: its file goes when the run ends
}

// Help is serve's long help.
func (c *ServeCmd) Help() string {
	return `Serves a web page and its JSON API (GET /api/status) that follow a build
live: progress, the time left, builders, running jobs with the tail of the
current phase's log, failures with their logs, the failures that stop the
most packages, a timeline per builder and progress over time. It only reads
the database (like pkgsched status), so it runs beside 'pkgsched run', from
another user or host that can read the database, and after the run.

The page shows no secret: no token, no store URL, no pkgrun settings. It
listens on 127.0.0.1 by default and then answers only to loopback names;
to serve others, listen on another address and give --token-file.`
}

// Run serves until ctx ends.
func (c *ServeCmd) Run(ctx context.Context, g *cli.Globals) error {
	abs, err := filepath.Abs(c.DB)
	if err != nil {
		return err
	}
	d, err := db.OpenReadOnly(ctx, abs)
	if err != nil {
		return err
	}
	owned := false // once the page owns d, it closes it
	defer func() {
		if !owned {
			d.Close()
		}
	}()
	var token string
	if c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return fmt.Errorf("read the token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" || strings.ContainsAny(token, " \t\r\n") {
			return fmt.Errorf("token file %s: want one word", c.TokenFile)
		}
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Listen, err)
	}
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	ip := net.ParseIP(host)
	loopback := ip != nil && ip.IsLoopback()
	if !loopback && token == "" {
		fmt.Fprintf(g.Stderr, "pkgsched: serving %s without a token: anyone who reaches %s can read the build's status and logs\n", c.DB, ln.Addr())
	}
	page := statuspage.New(statuspage.Options{
		DB: d, Database: abs, Token: token, LoopbackOnly: loopback && token == "",
		Open:    func(ctx context.Context) (*sql.DB, error) { return db.OpenReadOnly(ctx, abs) },
		Sources: func() statuspage.Sources { return c.sources(abs) },
	})
	owned = true
	defer page.Close()
	srv := &http.Server{
		Handler:           page,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(g.Stderr, "pkgsched: status of %s at http://%s/\n", c.DB, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// sources finds the work root and the store: the flags, else the
// settings file of the newest pkgsched run on the database
// (<db>.pkgrun-<pid>.json, see settingsFile), read again each time since a
// run may start after the page.
func (c *ServeCmd) sources(abs string) statuspage.Sources {
	workRoot, storeURL := c.WorkRoot, c.Store
	if workRoot == "" || storeURL == "" {
		c.mu.Lock()
		if s, ok := newestSettings(abs); ok {
			c.last = s
		}
		s := c.last
		c.mu.Unlock()
		if workRoot == "" {
			workRoot = s.WorkRoot
		}
		if storeURL == "" {
			storeURL = s.Store
		}
	}
	src := statuspage.Sources{WorkRoot: workRoot}
	if u, err := url.Parse(storeURL); err == nil && storeURL != "" {
		src.StoreKind = u.Scheme
		if u.Scheme == "file" && u.Path != "" {
			src.StoreDir = u.Path
		}
	}
	return src
}

// newestSettings reads the newest pkgrun settings file beside the
// database.
func newestSettings(abs string) (job.Settings, bool) {
	files, _ := filepath.Glob(globEscape(abs) + ".pkgrun-*.json")
	type f struct {
		name string
		t    time.Time
	}
	var fs []f
	for _, n := range files {
		if fi, err := os.Stat(n); err == nil {
			fs = append(fs, f{n, fi.ModTime()})
		}
	}
	sort.Slice(fs, func(a, b int) bool { return fs[a].t.After(fs[b].t) })
	for _, x := range fs {
		if s, err := job.ReadSettings(x.name); err == nil {
			return s, true
		}
	}
	return job.Settings{}, false
}
