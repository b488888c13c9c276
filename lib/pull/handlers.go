package pull

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/protocol"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store"
)

// apiErr is a refusal: the status and the Error body.
type apiErr struct {
	status int
	code   string
	msg    string
}

func (e *apiErr) Error() string { return e.code + ": " + e.msg }

func refuse(status int, code, format string, args ...any) *apiErr {
	return &apiErr{status, code, fmt.Sprintf(format, args...)}
}

func writeErr(w http.ResponseWriter, e *apiErr) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(Error{Code: e.code, Message: e.msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Handler is the server's HTTP API (see wire.go). Serve it over TLS.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathRegister, s.handle(s.register))
	mux.HandleFunc("POST "+PathLease, s.handle(s.poll))
	mux.HandleFunc("POST "+PathHeartbeat, s.handle(s.heartbeat))
	mux.HandleFunc("POST "+PathResult, s.handle(s.report))
	mux.HandleFunc("POST "+PathRelease, s.handle(s.release))
	mux.HandleFunc("POST "+PathBye, s.handle(s.bye))
	mux.HandleFunc("PUT "+PathObject+"{name...}", s.handle(s.upload))
	mux.HandleFunc("GET "+PathObject+"{name...}", s.handle(s.fetch))
	mux.HandleFunc("HEAD "+PathObject+"{name...}", s.handle(s.fetch))
	mux.HandleFunc("GET "+PathList, s.handle(s.list))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, refuse(http.StatusNotFound, CodeNotFound, "no such endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Server) handle(f func(http.ResponseWriter, *http.Request) *apiErr) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			writeErr(w, refuse(http.StatusServiceUnavailable, CodeUnavailable, "the pull server is shutting down; retry later"))
			return
		}
		if e := f(w, r); e != nil {
			writeErr(w, e)
		}
	}
}

// decode reads a JSON body of at most limit bytes strictly.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) *apiErr {
	if r.ContentLength > limit {
		return refuse(http.StatusRequestEntityTooLarge, CodeTooLarge, "body of %d bytes, the limit is %d", r.ContentLength, limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return refuse(http.StatusRequestEntityTooLarge, CodeTooLarge, "body over the limit of %d bytes", limit)
		}
		return refuse(http.StatusBadRequest, CodeBadRequest, "read the body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return refuse(http.StatusBadRequest, CodeBadRequest, "body: %v", err)
	}
	if dec.More() {
		return refuse(http.StatusBadRequest, CodeBadRequest, "body: trailing data after the JSON object")
	}
	return nil
}

// auth finds the request's open session.
func (s *Server) auth(r *http.Request) (*session, *apiErr) {
	h := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || !strings.HasPrefix(secret, SessionPrefix) || len(secret) > 128 {
		return nil, refuse(http.StatusUnauthorized, CodeUnauthorized, "no session: register first and send Authorization: Bearer SESSION")
	}
	hash := hashSecret(secret)
	s.mu.Lock()
	ss := s.sessions[hash]
	s.mu.Unlock()
	if ss == nil {
		var err *apiErr
		if ss, err = s.loadSession(r.Context(), hash); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss.ended {
		s.tellLocked(ss)
		return nil, endedErr(ss)
	}
	now := time.Now()
	ss.lastSeen = now
	if now.Sub(ss.dbSeen) > 5*time.Second {
		// For pkgsched status: at most one write per worker in 5s.
		ss.dbSeen = now
		s.w.later(`UPDATE pull_sessions SET last_seen = ? WHERE hash = ?`, now.UnixMilli(), ss.hash)
	}
	return ss, nil
}

func endedErr(ss *session) *apiErr {
	if ss.endCode == CodeRevoked {
		return refuse(http.StatusForbidden, CodeRevoked, "%s: %s", ss.worker, ss.endMsg)
	}
	return refuse(http.StatusGone, CodeGone, "%s: session ended: %s", ss.worker, ss.endMsg)
}

// loadSession brings a session of the database into memory (after a
// restart of pkgsched). Unknown sessions are 401.
func (s *Server) loadSession(ctx context.Context, hash string) (*session, *apiErr) {
	var token, worker, info, reason string
	var ended sql.NullInt64
	var created, seen int64
	err := s.db.QueryRowContext(ctx, `SELECT token, worker, info, created_at, last_seen, ended_at, end_reason FROM pull_sessions WHERE hash = ?`, hash).
		Scan(&token, &worker, &info, &created, &seen, &ended, &reason)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, refuse(http.StatusUnauthorized, CodeUnauthorized, "unknown session: register again")
	}
	if err != nil {
		return nil, refuse(http.StatusServiceUnavailable, CodeUnavailable, "look up the session: %v", err)
	}
	var req RegisterRequest
	if err := json.Unmarshal([]byte(info), &req); err != nil {
		return nil, refuse(http.StatusUnauthorized, CodeUnauthorized, "session of %s unreadable: register again", worker)
	}
	var labels string
	var revoked sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT labels, revoked_at FROM pull_tokens WHERE name = ?`, token).Scan(&labels, &revoked); err != nil {
		return nil, refuse(http.StatusUnauthorized, CodeUnauthorized, "the token of this session is gone: register again")
	}
	ss, e := s.newSession(hash, token, worker, req, labels)
	if e != nil {
		return nil, e
	}
	ss.created, ss.lastSeen = time.UnixMilli(created), time.UnixMilli(seen)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.sessions[hash]; old != nil {
		return old, nil
	}
	s.sessions[hash] = ss
	switch {
	case revoked.Valid:
		s.endSessionLocked(ss, CodeRevoked, "token "+token+" revoked")
	case ended.Valid:
		s.endSessionLocked(ss, CodeGone, reason)
	default:
		if old := s.byName[worker]; old != nil && old != ss {
			s.endSessionLocked(ss, CodeGone, "replaced by a newer registration")
		} else {
			s.byName[worker] = ss
		}
	}
	return ss, nil
}

// newSession builds a session's memory from its registration.
func (s *Server) newSession(hash, token, worker string, req RegisterRequest, tokenLabels string) (*session, *apiErr) {
	nw, err := CompileNoWay(req.NoWay)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, CodeBadRequest, "%v", err)
	}
	labels := map[string]string{}
	for k, v := range req.Labels {
		labels[k] = v
	}
	tl, _ := ParseLabels(tokenLabels)
	for k, v := range tl {
		labels[k] = v // the operator's labels win over the worker's
	}
	slots := max(req.Slots, 1)
	now := time.Now()
	return &session{hash: hash, token: token, worker: worker, info: req, labels: labels, noWay: nw,
		pool: executor.NewCorePool(req.Cores, s.cfg.Oversubscribe), slots: slots,
		deliver: make(chan *lease, 2*slots+2), inUse: make([]bool, slots), active: map[string]*lease{},
		created: now, lastSeen: now, idleFrom: now, endCh: make(chan struct{}), kick: make(chan struct{}, 1), told: make(chan struct{})}, nil
}

// skew says why a worker of tree revision tree and platform p may not
// build this run's jobs, or "" when it may.
func (s *Server) skew(tree string, p Platform) string {
	if s.cfg.Tree != "" && tree != s.cfg.Tree {
		got := tree
		if got == "" {
			got = "unknown"
		}
		return fmt.Sprintf("the worker's pkgsrc tree is at revision %s, the scan's at %s: update the worker's tree to %s", got, s.cfg.Tree, s.cfg.Tree)
	}
	want := s.cfg.Platform
	for _, f := range []struct{ name, want, got string }{
		{"OPSYS", want.OpSys, p.OpSys}, {"OS_VERSION", want.OSVersion, p.OSVersion}, {"MACHINE_ARCH", want.Arch, p.Arch},
	} {
		if f.want != "" && f.want != f.got {
			return fmt.Sprintf("the worker's %s is %q, the scan's %q: this build is for %s", f.name, f.got, f.want, want)
		}
	}
	return ""
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) *apiErr {
	select {
	case s.regs <- struct{}{}:
		defer func() { <-s.regs }()
	default:
		return refuse(http.StatusTooManyRequests, CodeBusy, "too many registrations at once; retry in a few seconds")
	}
	var req RegisterRequest
	if e := decode(w, r, MaxJSONBody, &req); e != nil {
		return e
	}
	if req.Version != ProtocolVersion {
		return refuse(http.StatusPreconditionFailed, CodeSkew, "protocol version %d, this server speaks %d: use a pkgrun of the same pkgbulk as pkgsched", req.Version, ProtocolVersion)
	}
	if !strings.HasPrefix(req.Token, TokenPrefix) || len(req.Token) > 128 {
		return refuse(http.StatusUnauthorized, CodeUnauthorized, "no valid registration token (pkgsched token add NAME makes one)")
	}
	switch {
	case req.Cores < 1 || req.Cores > 4096:
		return refuse(http.StatusBadRequest, CodeBadRequest, "cores %d: want 1 to 4096", req.Cores)
	case req.Slots < 0 || req.Slots > req.Cores:
		return refuse(http.StatusBadRequest, CodeBadRequest, "slots %d: want 0 to the cores (%d)", req.Slots, req.Cores)
	case len(req.Host) > 255 || strings.ContainsAny(req.Host, "\x00\n\r\t "):
		return refuse(http.StatusBadRequest, CodeBadRequest, "host name %.64q: too long or with spaces", req.Host)
	case len(req.Labels) > MaxLabels:
		return refuse(http.StatusBadRequest, CodeBadRequest, "%d labels, at most %d", len(req.Labels), MaxLabels)
	case len(req.NoWay) > MaxNoWay:
		return refuse(http.StatusBadRequest, CodeBadRequest, "%d no-way entries, at most %d", len(req.NoWay), MaxNoWay)
	case len(req.TreeRevision) > 128:
		return refuse(http.StatusBadRequest, CodeBadRequest, "tree revision longer than 128 bytes")
	}
	for k, v := range req.Labels {
		if err := checkLabel(k, v); err != nil {
			return refuse(http.StatusBadRequest, CodeBadRequest, "%v", err)
		}
	}
	ctx := r.Context()
	var name, labels string
	var one, used int
	var revoked sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT name, labels, one_session, sessions, revoked_at FROM pull_tokens WHERE hash = ?`, hashSecret(req.Token)).
		Scan(&name, &labels, &one, &used, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return refuse(http.StatusUnauthorized, CodeUnauthorized, "unknown registration token")
	}
	if err != nil {
		return refuse(http.StatusServiceUnavailable, CodeUnavailable, "look up the token: %v", err)
	}
	if revoked.Valid {
		return refuse(http.StatusForbidden, CodeRevoked, "the token of %s was revoked", name)
	}
	if one == 1 && used > 0 {
		return refuse(http.StatusUnauthorized, CodeUnauthorized, "the token of %s opens one session only and was used", name)
	}
	if why := s.skew(req.TreeRevision, req.Platform); why != "" {
		s.logf("pull:%s (%s) refused: %s", name, req.Host, why)
		return refuse(http.StatusPreconditionFailed, CodeSkew, "%s", why)
	}
	secret, err := newSecret(SessionPrefix)
	if err != nil {
		return refuse(http.StatusServiceUnavailable, CodeUnavailable, "%v", err)
	}
	hash := hashSecret(secret)
	worker := "pull:" + name
	ss, e := s.newSession(hash, name, worker, req, labels)
	if e != nil {
		return e
	}
	now := time.Now().UnixMilli()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return refuse(http.StatusServiceUnavailable, CodeUnavailable, "open a session: %v", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE pull_tokens SET sessions = sessions + 1 WHERE name = ? AND revoked_at IS NULL AND (one_session = 0 OR sessions = 0)`, name)
	if err != nil {
		return refuse(http.StatusServiceUnavailable, CodeUnavailable, "open a session: %v", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return refuse(http.StatusUnauthorized, CodeUnauthorized, "the token of %s was revoked or used meanwhile", name)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE pull_sessions SET ended_at = ?, end_reason = 'replaced by a newer registration' WHERE token = ? AND ended_at IS NULL`, now, name); err != nil {
		return refuse(http.StatusServiceUnavailable, CodeUnavailable, "open a session: %v", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO pull_sessions (hash, token, worker, info, created_at, last_seen) VALUES (?, ?, ?, ?, ?, ?)`,
		hash, name, worker, encodeInfo(req), now, now); err != nil {
		return refuse(http.StatusServiceUnavailable, CodeUnavailable, "open a session: %v", err)
	}
	if err := tx.Commit(); err != nil {
		return refuse(http.StatusServiceUnavailable, CodeUnavailable, "open a session: %v", err)
	}
	s.mu.Lock()
	old := s.byName[worker]
	s.sessions[hash] = ss
	s.mu.Unlock()
	if old != nil {
		// One token is one worker: registering again means it started
		// again, and what the old session ran is gone.
		s.endSession(old, CodeGone, "replaced by a newer registration")
		s.mu.Lock()
		s.tellLocked(old)
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.byName[worker] = ss
	s.notifyLocked()
	s.mu.Unlock()
	s.logf("%s registered from %s (%s, %d cores, %d slots)", worker, req.Host, req.Platform, req.Cores, ss.slots)
	writeJSON(w, http.StatusOK, RegisterResponse{Session: secret, Worker: worker, LeaseTTL: Duration(s.cfg.LeaseTTL),
		Heartbeat: Duration(s.cfg.LeaseTTL / 3), PollWait: Duration(s.cfg.PollWait), Labels: ss.labels})
	return nil
}

func (s *Server) poll(w http.ResponseWriter, r *http.Request) *apiErr {
	ss, e := s.auth(r)
	if e != nil {
		return e
	}
	var req LeaseRequest
	if e := decode(w, r, MaxJSONBody, &req); e != nil {
		return e
	}
	if why := s.skew(req.TreeRevision, ss.info.Platform); why != "" {
		return refuse(http.StatusPreconditionFailed, CodeSkew, "%s", why)
	}
	wait := req.Wait.D()
	if wait <= 0 || wait > s.cfg.PollWait {
		wait = s.cfg.PollWait
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		s.mu.Lock()
		if ss.noSpace {
			s.mu.Unlock()
			return refuse(http.StatusInsufficientStorage, CodeNoSpace, "%s ran out of disk space in an earlier job: free space and register again", ss.worker)
		}
		s.offerLocked(ss)
		s.mu.Unlock()
		select {
		case <-ss.kick:
			continue
		case l := <-ss.deliver:
			s.mu.Lock()
			ok := l.state == "active"
			lw := l.Lease
			lw.Expires = l.expires
			s.mu.Unlock()
			if !ok {
				continue // ended before the worker asked for it
			}
			writeJSON(w, http.StatusOK, lw)
			return nil
		case <-t.C:
			w.WriteHeader(http.StatusNoContent)
			return nil
		case <-ss.endCh:
			s.mu.Lock()
			defer s.mu.Unlock()
			s.tellLocked(ss)
			return endedErr(ss)
		case <-r.Context().Done():
			return nil
		case <-s.stop:
			return refuse(http.StatusServiceUnavailable, CodeUnavailable, "the pull server is shutting down; retry later")
		}
	}
}

// offerLocked queues a slot for ss when it can take one more job.
func (s *Server) offerLocked(ss *session) {
	if ss.waiting >= ss.slots || ss.ended || ss.noSpace || s.closed {
		return
	}
	idx := 0
	for idx < len(ss.inUse) && ss.inUse[idx] {
		idx++
	}
	if idx < len(ss.inUse) {
		ss.inUse[idx] = true
	}
	name := ss.worker
	if ss.slots > 1 {
		name = fmt.Sprintf("%s/%d", ss.worker, idx+1)
	}
	ss.waiting++
	s.queue = append(s.queue, &Slot{s: s, sess: ss, idx: idx, name: name, CoreHold: executor.CoreHold{Pool: ss.pool}})
	s.notifyLocked()
}

// authLease authenticates the request's session and finds its lease
// (auth, then leaseOf).
func (s *Server) authLease(r *http.Request) (*session, *lease, *apiErr) {
	ss, e := s.auth(r)
	if e != nil {
		return nil, nil, e
	}
	l, e := s.leaseOf(r, ss)
	if e != nil {
		return nil, nil, e
	}
	return ss, l, nil
}

// leaseOf finds the request's lease: the current lease of its job, held by
// ss, active and not expired; anything else is 409 (400 for a malformed
// header).
func (s *Server) leaseOf(r *http.Request, ss *session) (*lease, *apiErr) {
	id := r.Header.Get(HeaderLease)
	if len(id) != 32 {
		return nil, refuse(http.StatusBadRequest, CodeBadRequest, "no lease: want the %s and %s headers", HeaderLease, HeaderAttempt)
	}
	if _, err := hex.DecodeString(id); err != nil {
		return nil, refuse(http.StatusBadRequest, CodeBadRequest, "malformed %s header", HeaderLease)
	}
	attempt, err := strconv.Atoi(r.Header.Get(HeaderAttempt))
	if err != nil || attempt < 1 {
		return nil, refuse(http.StatusBadRequest, CodeBadRequest, "malformed %s header", HeaderAttempt)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[id]
	switch {
	case l == nil:
		s.oldLeaseSeenLocked(id, ss)
		return nil, refuse(http.StatusConflict, CodeFenced, "lease %s is not a current lease (ended, replaced, or of an earlier pkgsched): stop this job", id)
	case l.sess != ss || l.Attempt != attempt:
		return nil, refuse(http.StatusConflict, CodeFenced, "lease %s attempt %d is not this session's", id, attempt)
	case l.state != "active":
		return nil, refuse(http.StatusConflict, CodeFenced, "lease %s of %s has ended", id, l.PkgName)
	case time.Now().After(l.expires):
		return nil, refuse(http.StatusConflict, CodeFenced, "lease %s of %s expired at %s", id, l.PkgName, l.expires.UTC().Format(time.RFC3339))
	}
	return l, nil
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) *apiErr {
	ss, l, e := s.authLease(r)
	if e != nil {
		return e
	}
	var req HeartbeatRequest
	if e := decode(w, r, MaxJSONBody, &req); e != nil {
		return e
	}
	// A revoked token ends the session at its next heartbeat, even
	// before the sweep sees it.
	var revoked sql.NullInt64
	err := s.db.QueryRowContext(r.Context(), `SELECT revoked_at FROM pull_tokens WHERE name = ?`, ss.token).Scan(&revoked)
	if errors.Is(err, sql.ErrNoRows) || err == nil && revoked.Valid {
		s.endSession(ss, CodeRevoked, "token "+ss.token+" revoked")
		s.mu.Lock()
		defer s.mu.Unlock()
		s.tellLocked(ss)
		return endedErr(ss)
	}
	now := time.Now()
	exp := now.Add(s.cfg.LeaseTTL)
	s.mu.Lock()
	if l.state != "active" {
		s.mu.Unlock()
		return refuse(http.StatusConflict, CodeFenced, "lease %s of %s has ended", l.ID, l.PkgName)
	}
	l.expires = exp
	if len(req.Phase) <= 64 {
		l.phase = req.Phase
	}
	s.mu.Unlock()
	// For status only (fencing is in memory): queued, not waited for.
	s.w.later(`UPDATE pull_leases SET expires_at = ? WHERE id = ? AND state = 'active'`, exp.UnixMilli(), l.ID)
	s.w.later(`UPDATE pull_sessions SET last_seen = ? WHERE hash = ?`, now.UnixMilli(), ss.hash)
	writeJSON(w, http.StatusOK, HeartbeatResponse{Expires: exp})
	return nil
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request) *apiErr {
	_, l, e := s.authLease(r)
	if e != nil {
		return e
	}
	name := r.PathValue("name")
	kind := l.Objects.kind(name)
	if kind == "" {
		return refuse(http.StatusForbidden, CodeOutOfScope, "%q is not an object of lease %s (%s may write %s, %s and files in %s)", name, l.ID, l.PkgName, l.Objects.Package, l.Objects.Fragment, l.Objects.LogDir)
	}
	limit := map[string]int64{"package": s.cfg.MaxPackage, "log": s.cfg.MaxLog, "fragment": MaxFragment}[kind]
	if r.ContentLength < 0 {
		return refuse(http.StatusLengthRequired, CodeNoLength, "upload %s: Content-Length required", name)
	}
	if r.ContentLength > limit {
		return refuse(http.StatusRequestEntityTooLarge, CodeTooLarge, "%s: %d bytes, the limit of a %s is %d", name, r.ContentLength, kind, limit)
	}
	want := strings.ToLower(r.Header.Get(HeaderSHA256))
	if want != "" && (len(want) != 64 || strings.Trim(want, "0123456789abcdef") != "") {
		return refuse(http.StatusBadRequest, CodeBadRequest, "malformed %s header", HeaderSHA256)
	}
	s.mu.Lock()
	_, again := l.staged[name]
	logs := 0
	for n := range l.staged {
		if strings.HasPrefix(n, l.Objects.LogDir) {
			logs++
		}
	}
	if kind == "log" && !again && logs >= MaxLogFiles {
		s.mu.Unlock()
		return refuse(http.StatusRequestEntityTooLarge, CodeTooLarge, "%s: more than %d log files", l.Objects.LogDir, MaxLogFiles)
	}
	if l.state != "active" {
		s.mu.Unlock()
		return refuse(http.StatusConflict, CodeFenced, "lease %s of %s has ended", l.ID, l.PkgName)
	}
	l.uploads.Add(1)
	s.mu.Unlock()
	defer l.uploads.Done()
	// The upload stops when the lease ends.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(l.ctx, cancel)
	defer stop()
	h := sha256.New()
	body := io.TeeReader(http.MaxBytesReader(w, r.Body, r.ContentLength), h)
	staged := stagedName(l.ID, name)
	if err := s.st.Put(ctx, staged, store.CtxReader(ctx, body), r.ContentLength); err != nil {
		s.st.Delete(context.Background(), staged)
		if l.ctx.Err() != nil {
			return refuse(http.StatusConflict, CodeFenced, "lease %s of %s ended during the upload", l.ID, l.PkgName)
		}
		if r.Context().Err() != nil {
			return refuse(http.StatusBadRequest, CodeBadRequest, "upload %s: the client went away", name)
		}
		return refuse(http.StatusServiceUnavailable, CodeUnavailable, "upload %s: store: %v", name, store.Permanent(err))
	}
	if got := hex.EncodeToString(h.Sum(nil)); want != "" && got != want {
		s.st.Delete(context.Background(), staged)
		return refuse(http.StatusBadRequest, CodeBadRequest, "upload %s: SHA-256 %s, the header says %s", name, got, want)
	}
	s.mu.Lock()
	if l.state != "active" && l.state != "reporting" {
		s.mu.Unlock()
		s.st.Delete(context.Background(), staged)
		return refuse(http.StatusConflict, CodeFenced, "lease %s of %s ended during the upload", l.ID, l.PkgName)
	}
	l.staged[name] = r.ContentLength
	s.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) *apiErr {
	ss, l, e := s.authLease(r)
	if e != nil {
		return e
	}
	var rep ResultReport
	if e := decode(w, r, MaxResultBody, &rep); e != nil {
		return e
	}
	over := rep.Over
	stdout := []byte(rep.Stdout)
	if len(stdout) > protocol.MaxStdout {
		stdout, over = stdout[:protocol.MaxStdout], true
	}
	stderr := rep.Stderr
	if len(stderr) > protocol.StderrTail {
		stderr = stderr[len(stderr)-protocol.StderrTail:]
	}
	out, runErr := protocol.Interpret(protocol.Observed{Worker: l.slot.name,
		Exit:   protocol.Exit{Code: rep.Exit.Code, Signal: rep.Exit.Signal, SigName: rep.Exit.SigName},
		Stdout: stdout, Over: over, Stderr: stderr})
	s.mu.Lock()
	staged := make(map[string]int64, len(l.staged))
	for k, v := range l.staged {
		staged[k] = v
	}
	s.mu.Unlock()
	if out != nil {
		if e := checkResult(out.Result, l, staged); e != nil {
			return e
		}
	}
	// The result is the lease's: from here on it is accepted or the job
	// is requeued, never both.
	s.mu.Lock()
	if l.state != "active" {
		s.mu.Unlock()
		return refuse(http.StatusConflict, CodeFenced, "lease %s of %s has ended", l.ID, l.PkgName)
	}
	l.state = "reporting"
	s.mu.Unlock()
	l.uploads.Wait()
	s.dbEnd(l, "done")
	var promoted []string
	var perr error
	if out != nil {
		promoted, perr = s.promote(l, out.Result, staged)
		if perr != nil {
			out, runErr = nil, &executor.CrashError{Worker: l.slot.name, Reason: fmt.Sprintf("promote the objects of %s: %v", l.PkgName, perr), Lost: true}
		}
	}
	var nospace *executor.NoSpaceError
	s.mu.Lock()
	l.state = "ended"
	s.forgetLocked(l)
	if errors.As(runErr, &nospace) {
		ss.noSpace = true
		s.logf("%s ran out of disk space; no more jobs for it", ss.worker)
		s.notifyLocked()
	}
	s.mu.Unlock()
	s.dropStaged(l)
	l.done <- result{out: out, err: runErr}
	if perr != nil {
		return refuse(http.StatusServiceUnavailable, CodeUnavailable, "the result was taken but its objects could not be stored; the job is requeued")
	}
	writeJSON(w, http.StatusOK, ResultResponse{Promoted: promoted})
	return nil
}

// checkResult refuses a result that names objects outside the lease's
// scope or lacks what it says it built (nothing is changed: the worker
// may upload and report again while its lease lives).
func checkResult(res *job.Result, l *lease, staged map[string]int64) *apiErr {
	sc := l.Objects
	if res.PkgName != l.PkgName {
		return refuse(http.StatusForbidden, CodeOutOfScope, "the result is for %s, lease %s is for %s", res.PkgName, l.ID, l.PkgName)
	}
	if res.Package != "" && res.Package != sc.Package {
		return refuse(http.StatusForbidden, CodeOutOfScope, "the result names package %s, lease %s may write %s", res.Package, l.ID, sc.Package)
	}
	if res.Fragment != "" && res.Fragment != sc.Fragment {
		return refuse(http.StatusForbidden, CodeOutOfScope, "the result names fragment %s, lease %s may write %s", res.Fragment, l.ID, sc.Fragment)
	}
	if res.LogDir != "" && strings.TrimSuffix(res.LogDir, "/")+"/" != sc.LogDir {
		return refuse(http.StatusForbidden, CodeOutOfScope, "the result names log directory %s, lease %s may write %s", res.LogDir, l.ID, sc.LogDir)
	}
	for _, p := range res.Phases {
		if p.Log != "" && sc.kind(p.Log) != "log" {
			return refuse(http.StatusForbidden, CodeOutOfScope, "the result names log %s outside %s", p.Log, sc.LogDir)
		}
	}
	if res.Status == job.StatusDone {
		// What a build says it made must have been uploaded (an
		// up-to-date package is in the store already).
		for _, n := range []string{res.Package, res.Fragment} {
			if _, ok := staged[n]; n != "" && !ok {
				return refuse(http.StatusBadRequest, CodeBadRequest, "the result of %s names %s, which was not uploaded", l.PkgName, n)
			}
		}
	}
	return nil
}

// promote moves a lease's staged objects into place: the log directory
// becomes what was staged (older logs removed), then the package, then
// the fragment (which marks the package built for pkgindex).
func (s *Server) promote(l *lease, res *job.Result, staged map[string]int64) ([]string, error) {
	ctx := context.Background()
	if len(staged) == 0 && res.Status == job.StatusUpToDate {
		return nil, nil
	}
	var old []string
	err := s.st.List(ctx, l.Objects.LogDir, func(i store.Info) error {
		if _, ok := staged[i.Name]; !ok {
			old = append(old, i.Name)
		}
		return nil
	})
	if err != nil && !store.IsNotExist(err) {
		return nil, fmt.Errorf("list %s: %w", l.Objects.LogDir, err)
	}
	for _, n := range old {
		if err := s.st.Delete(ctx, n); err != nil {
			return nil, fmt.Errorf("remove the old log %s: %w", n, err)
		}
	}
	var order []string
	for n := range staged {
		if l.Objects.kind(n) == "log" {
			order = append(order, n)
		}
	}
	for _, n := range []string{l.Objects.Package, l.Objects.Fragment} {
		if _, ok := staged[n]; ok {
			order = append(order, n)
		}
	}
	for _, n := range order {
		if err := s.copyObject(ctx, stagedName(l.ID, n), n, staged[n]); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func (s *Server) copyObject(ctx context.Context, from, to string, size int64) error {
	rc, err := s.st.Get(ctx, from)
	if err != nil {
		return fmt.Errorf("read the staged %s: %w", from, err)
	}
	defer rc.Close()
	if err := s.st.Put(ctx, to, rc, size); err != nil {
		return fmt.Errorf("store %s: %w", to, err)
	}
	return nil
}

func (s *Server) release(w http.ResponseWriter, r *http.Request) *apiErr {
	ss, l, e := s.authLease(r)
	if e != nil {
		return e
	}
	var req ReleaseRequest
	if e := decode(w, r, MaxJSONBody, &req); e != nil {
		return e
	}
	reason := req.Reason
	if len(reason) > 200 {
		reason = reason[:200]
	}
	if !s.finish(l, "released", lostErr(l, "released by the worker: "+reason)) {
		return refuse(http.StatusConflict, CodeFenced, "lease %s of %s has ended", l.ID, l.PkgName)
	}
	s.logf("%s released %s (%s); requeued", ss.worker, l.PkgName, reason)
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) bye(w http.ResponseWriter, r *http.Request) *apiErr {
	ss, e := s.auth(r)
	if e != nil {
		return e
	}
	io.Copy(io.Discard, io.LimitReader(r.Body, MaxJSONBody))
	s.endSession(ss, CodeGone, "the worker left")
	s.mu.Lock()
	s.tellLocked(ss)
	s.mu.Unlock()
	s.logf("%s left", ss.worker)
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) fetch(w http.ResponseWriter, r *http.Request) *apiErr {
	if _, e := s.auth(r); e != nil {
		return e
	}
	name := r.PathValue("name")
	if !readable(name) {
		return refuse(http.StatusForbidden, CodeOutOfScope, "%q: workers read only All/<package> and index/<fragment>", name)
	}
	info, err := s.st.Stat(r.Context(), name)
	if store.IsNotExist(err) {
		return refuse(http.StatusNotFound, CodeNotFound, "%s: no such object", name)
	}
	if err != nil {
		return refuse(http.StatusServiceUnavailable, CodeUnavailable, "stat %s: %v", name, err)
	}
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	w.Header().Set("Last-Modified", info.ModTime.UTC().Format(http.TimeFormat))
	w.Header().Set("Content-Type", "application/octet-stream")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	rc, err := s.st.Get(r.Context(), name)
	if store.IsNotExist(err) {
		return refuse(http.StatusNotFound, CodeNotFound, "%s: no such object", name)
	}
	if err != nil {
		return refuse(http.StatusServiceUnavailable, CodeUnavailable, "read %s: %v", name, err)
	}
	defer rc.Close()
	w.WriteHeader(http.StatusOK)
	io.Copy(w, rc)
	return nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) *apiErr {
	if _, e := s.auth(r); e != nil {
		return e
	}
	prefix := r.URL.Query().Get("prefix")
	if !listable(prefix) {
		return refuse(http.StatusForbidden, CodeOutOfScope, "prefix %q: workers list only All/ and index/", prefix)
	}
	l := ObjectList{Objects: []ObjectInfo{}}
	err := s.st.List(r.Context(), prefix, func(i store.Info) error {
		if readable(i.Name) {
			l.Objects = append(l.Objects, ObjectInfo{Name: i.Name, Size: i.Size, ModTime: i.ModTime})
		}
		return nil
	})
	if err != nil && !store.IsNotExist(err) {
		return refuse(http.StatusServiceUnavailable, CodeUnavailable, "list %s: %v", prefix, err)
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

func encodeJSON(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }
