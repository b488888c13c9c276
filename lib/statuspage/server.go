// Package statuspage serves pkgsched's live status page and its JSON API
// from a build database, read-only: progress, the time left, builders and
// their running jobs with the tail of the current phase's log, failures
// with links to their logs, the failures that stop the most packages, a
// timeline per builder and progress over time.
//
// The page (assets/) is plain HTML, CSS and JavaScript embedded in the
// binary: no build step, nothing fetched from elsewhere, so it works
// offline. It polls GET /api/status and draws everything with textContent
// and SVG elements, never markup built from data, so a hostile COMMENT or
// log line shows as text. Responses carry a Content-Security-Policy that
// allows only the page's own script and style files.
//
// Safe to expose: nothing in a response comes from pkgrun's settings but
// the logs of a file store, served from its bulklog/ and no other place;
// an optional token (constant-time compared, never logged) guards every
// path.
package statuspage

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/sched"
)

//go:embed assets
var assets embed.FS

// Sources says where the running jobs' logs are.
type Sources struct {
	WorkRoot  string // pkgrun's work root, holding the job directories; "" when unknown
	StoreDir  string // the directory of a file:// store (bulklog/ is linked); "" for none or another kind
	StoreKind string // the store's scheme (file, sftp, s3), for the page's note; "" when unknown
}

// Options configure a Server.
type Options struct {
	DB       *sql.DB // opened read-only (db.OpenReadOnly)
	Database string  // the database's path, shown by its base name
	// Open, when not nil, opens Database again once the file at that
	// path is another one (pkgdag build replaced it for a new build), so a
	// server left running follows the next build. DB is the first one.
	Open func(ctx context.Context) (*sql.DB, error)
	// Token, when not empty, is required of every request: as ?token=
	// (which sets a cookie and redirects), the cookie, or an
	// Authorization: Bearer header.
	Token string
	// LoopbackOnly refuses requests whose Host is not a loopback name or
	// address (DNS rebinding), for a server on 127.0.0.1 without a token.
	LoopbackOnly bool
	// Sources is called for every snapshot (pkgsched run writes its
	// settings file when it starts); nil means no logs.
	Sources func() Sources
	Now     func() time.Time // default time.Now
	// CacheFor reuses a snapshot for this long (default 1s), so many
	// viewers cost one read.
	CacheFor time.Duration
}

// Server is the page's HTTP handler.
type Server struct {
	opts  Options
	mux   *http.ServeMux
	token [32]byte

	mu     sync.Mutex
	db     *sql.DB
	file   os.FileInfo // of Database when db was opened
	hist   *history
	cached []byte
	at     time.Time
}

const cookieName = "pkgbulk_status_token"

// New returns the handler.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CacheFor <= 0 {
		opts.CacheFor = time.Second
	}
	if opts.Sources == nil {
		opts.Sources = func() Sources { return Sources{} }
	}
	s := &Server{opts: opts, mux: http.NewServeMux(), hist: newHistory(), db: opts.DB}
	s.file, _ = os.Stat(opts.Database)
	s.token = sha256.Sum256([]byte(opts.Token))
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	s.mux.Handle("GET /{$}", files)
	s.mux.Handle("GET /app.js", files)
	s.mux.Handle("GET /app.css", files)
	s.mux.HandleFunc("GET /api/status", s.status)
	s.mux.HandleFunc("GET /logs/{pkg}/{name}", s.log)
	return s
}

// ServeHTTP checks the host and token, sets the security headers and
// dispatches.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "read-only: only GET", http.StatusMethodNotAllowed)
		return
	}
	if s.opts.LoopbackOnly && !loopbackHost(r.Host) {
		http.Error(w, "this server answers only to a loopback address (start it with --token-file to serve other names)", http.StatusMisdirectedRequest)
		return
	}
	if s.opts.Token != "" {
		if t := r.URL.Query().Get("token"); t != "" {
			if !s.tokenOK(t) {
				http.Error(w, "wrong token", http.StatusUnauthorized)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: cookieName, Value: t, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
			u := *r.URL
			q := u.Query()
			q.Del("token")
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return
		}
		if !s.authorized(r) {
			http.Error(w, "token required: open this page as /?token=TOKEN (the contents of pkgsched serve's --token-file)", http.StatusUnauthorized)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) tokenOK(t string) bool {
	sum := sha256.Sum256([]byte(t))
	return subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1
}

func (s *Server) authorized(r *http.Request) bool {
	if a, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.tokenOK(a) {
		return true
	}
	c, err := r.Cookie(cookieName)
	return err == nil && s.tokenOK(c.Value)
}

// loopbackHost reports whether a Host header names this machine's
// loopback: localhost or a loopback address, with any port.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	b, err := s.snapshotJSON(r.Context())
	if err != nil {
		http.Error(w, "read the database: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func (s *Server) snapshotJSON(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	if s.cached != nil && now.Sub(s.at) < s.opts.CacheFor && !now.Before(s.at) {
		return s.cached, nil
	}
	snap, err := s.snapshot(ctx, now)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return nil, err
	}
	s.cached, s.at = b, now
	return b, nil
}

// Snapshot reads the database at now: what GET /api/status returns.
func (s *Server) Snapshot(ctx context.Context, now time.Time) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot(ctx, now)
}

// snapshot is Snapshot for a caller that holds s.mu.
func (s *Server) snapshot(ctx context.Context, now time.Time) (*Snapshot, error) {
	d, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	st, err := sched.ReadStatus(ctx, d, now)
	if err != nil {
		return nil, err
	}
	if err := s.hist.update(ctx, d); err != nil {
		return nil, err
	}
	src := s.opts.Sources()
	snap := &Snapshot{
		Now: now.UnixMilli(), Database: filepath.Base(s.opts.Database), Total: st.Total, Started: st.Started,
		Counts: counts(st), States: map[string]int{}, ETAMS: st.ETAMS, Slots: st.Slots,
		Scheduler: st.Scheduler, Message: st.Scheduler.Message(),
		Builders: []Builder{}, Running: []Running{}, Failures: []Failure{}, Breakers: breakers(st.Failed),
		Timeline: s.hist.timeline(), Progress: s.hist.progress(now.UnixMilli()),
	}
	for k, v := range st.Counts {
		snap.States[string(k)] = v
	}
	if l := *st.Scheduler; l.Resume != "" {
		l.Resume = strings.Replace(l.Resume, "--db DB", "--db "+snap.Database, 1)
		snap.Scheduler = &l
	}
	var names []string
	for _, r := range st.Running {
		names = append(names, r.PkgName)
	}
	failed := st.Failed
	if len(failed) > maxFailures {
		failed = failed[:maxFailures]
	}
	for _, f := range failed {
		names = append(names, f.PkgName)
	}
	com, err := comments(ctx, d, names)
	if err != nil {
		return nil, err
	}
	busy := map[string]Builder{}
	for _, r := range st.Running {
		run := Running{PkgName: r.PkgName, Comment: com[r.PkgName], Worker: r.Worker, AgeMS: r.AgeMS, EstimateMS: r.EstimateMS, Tail: []string{}}
		beat := r.AgeMS
		if l, ok := findJobLog(src.WorkRoot, r.PkgName); ok {
			run.Phase = l.phase
			if t := tail(l.path, tailLines); t != nil {
				run.Tail = t
			}
			beat = max(now.Sub(l.modified).Milliseconds(), 0)
		}
		snap.Running = append(snap.Running, run)
		busy[r.Worker] = Builder{Worker: r.Worker, PkgName: r.PkgName, Phase: run.Phase, AgeMS: r.AgeMS, LastBeatMS: beat}
	}
	for w := range s.hist.jobs {
		if _, ok := busy[w]; !ok && w != "" {
			busy[w] = Builder{Worker: w}
		}
	}
	for _, b := range busy {
		b.Jobs = s.hist.jobs[b.Worker]
		snap.Builders = append(snap.Builders, b)
	}
	sortBuilders(snap.Builders)
	for _, f := range failed {
		x := Failure{PkgName: f.PkgName, PkgPath: f.PkgPath, Comment: com[f.PkgName], State: string(f.State),
			Phase: f.Phase, Detail: f.Detail, Breaks: f.Breaks, Logs: []Link{}}
		if f.State != sched.Prefailed {
			x.Logs = storeLogs(src.StoreDir, f.PkgName)
			if len(x.Logs) == 0 {
				x.LogNote = "logs: bulklog/" + f.PkgName + "/ in the package store"
				if src.StoreKind != "" && src.StoreKind != "file" {
					x.LogNote += " (" + src.StoreKind + ")"
				}
			}
		}
		snap.Failures = append(snap.Failures, x)
	}
	return snap, nil
}

// Close closes the database the server reads (it owns one it opened
// again).
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Close()
}

// current returns the database to read: the one opened, or the file now
// at the path when it was replaced and Open is set.
func (s *Server) current(ctx context.Context) (*sql.DB, error) {
	if s.opts.Open == nil || s.file == nil {
		return s.db, nil
	}
	fi, err := os.Stat(s.opts.Database)
	if err != nil || os.SameFile(fi, s.file) {
		return s.db, nil // gone for a moment, or the same: keep reading what is open
	}
	d, err := s.opts.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("open the new %s: %w", s.opts.Database, err)
	}
	s.db.Close()
	s.db, s.file, s.hist = d, fi, newHistory()
	return d, nil
}

// sortBuilders orders builders by name, numbers in names by value
// (local/2 before local/10).
func sortBuilders(b []Builder) {
	key := func(s string) string {
		var out strings.Builder
		num := ""
		flush := func() {
			if num != "" {
				fmt.Fprintf(&out, "%012s", num)
				num = ""
			}
		}
		for _, r := range s {
			if r >= '0' && r <= '9' {
				num += string(r)
				continue
			}
			flush()
			out.WriteRune(r)
		}
		flush()
		return out.String()
	}
	for i := 1; i < len(b); i++ {
		for j := i; j > 0 && key(b[j].Worker) < key(b[j-1].Worker); j-- {
			b[j], b[j-1] = b[j-1], b[j]
		}
	}
}

func (s *Server) log(w http.ResponseWriter, r *http.Request) {
	pkg, name := r.PathValue("pkg"), r.PathValue("name")
	b, err := readStoreLog(s.opts.Sources().StoreDir, pkg, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			http.NotFound(w, r)
			return
		}
		http.Error(w, "cannot read that log", http.StatusNotFound)
		return
	}
	// Text, never rendered: a log is not a page.
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; sandbox")
	w.Write(b)
}
