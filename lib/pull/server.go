package pull

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store"
)

// Defaults of Config.
const (
	DefaultLeaseTTL = 5 * time.Minute
	DefaultSweep    = time.Second
)

// Config configures a Server.
type Config struct {
	// DB is the build database (lib/db, schema with the pull tables).
	DB *sql.DB
	// Store is where promoted objects go and staged ones wait; its
	// credentials never leave the server.
	Store store.Store
	// Settings are the run's pkgrun settings; a lease carries them without
	// the store and without what is the worker's own.
	Settings job.Settings
	// LeaseTTL is how long a lease lives without a heartbeat
	// (DefaultLeaseTTL).
	LeaseTTL time.Duration
	// PollWait is the longest a lease poll is held (DefaultPollWait).
	PollWait time.Duration
	// Tree is the scan's pkgsrc tree revision; "" checks none.
	Tree string
	// Platform is the scan's platform; empty fields are not checked.
	Platform Platform
	// Oversubscribe is the factor of a worker's cores that its jobs'
	// MAKE_JOBS may add up to (executor.NewCorePool; 1 when less).
	Oversubscribe float64
	// MaxPackage and MaxLog bound uploads (MaxPackage, MaxLog when 0).
	MaxPackage, MaxLog int64
	// Sweep is how often revoked tokens and vanished workers are looked
	// for (DefaultSweep).
	Sweep time.Duration
	// Log gets one line per worker event (registration, lost lease...);
	// never a secret. nil: io.Discard.
	Log io.Writer
}

// Server is the pull server: the HTTP handlers (Handler) and the executor
// side (Acquire hands out one Slot per waiting worker).
type Server struct {
	cfg      Config
	db       *sql.DB
	w        *dbWriter // lease and session writes, committed in groups
	st       store.Store
	settings job.Settings
	suffix   string
	log      io.Writer

	mu       sync.Mutex
	sessions map[string]*session // by hash of the secret, also ended ones
	byName   map[string]*session // open sessions by worker name
	leases   map[string]*lease   // leases of this process, by id
	attempts map[string]int      // the highest lease attempt of each package
	// lapsing: packages whose lease of an earlier pkgsched may still be
	// building, until when; oldLeases: those leases by id.
	lapsing   map[string]*lapse
	oldLeases map[string]oldLease
	queue     []*Slot       // waiting slots, oldest first
	wake      chan struct{} // closed and replaced when the queue or a core pool changes
	closed    bool

	regs chan struct{} // registrations in flight
	stop chan struct{}
	wg   sync.WaitGroup
}

type session struct {
	hash     string
	token    string
	worker   string // pull:NAME
	info     RegisterRequest
	labels   map[string]string
	noWay    *NoWay
	pool     *executor.CorePool
	slots    int
	deliver  chan *lease
	waiting  int // live slots: queued, in the scheduler's hands or running
	inUse    []bool
	active   map[string]*lease
	created  time.Time
	lastSeen time.Time
	dbSeen   time.Time // last_seen last written
	idleFrom time.Time
	ended    bool
	endCode  string
	endMsg   string
	noSpace  bool
	endCh    chan struct{}
	kick     chan struct{} // a slot came back: a waiting poll may offer a new one
	told     chan struct{} // closed once the ended session's worker was refused a request
	toldDone bool
}

type lapse struct {
	until time.Time
	gone  chan struct{} // closed when the old lease's worker was told
}

type oldLease struct {
	pkgname string
	session string // hash
}

// waitLapse waits until pkgname's lease of an earlier pkgsched cannot be
// building any more.
func (s *Server) waitLapse(ctx context.Context, pkgname string) error {
	s.mu.Lock()
	lp := s.lapsing[pkgname]
	s.mu.Unlock()
	if lp == nil {
		return nil
	}
	if d := time.Until(lp.until); d > 0 {
		s.logf("%s: its lease of an earlier pkgsched may still be building; handing it out again in %v at most", pkgname, d.Round(time.Second))
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-lp.gone:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stop:
		}
	}
	s.mu.Lock()
	if s.lapsing[pkgname] == lp {
		delete(s.lapsing, pkgname)
	}
	s.mu.Unlock()
	return nil
}

// oldLeaseSeenLocked: the worker of a lease of an earlier pkgsched was
// just told that it is fenced; its job may go out again.
func (s *Server) oldLeaseSeenLocked(id string, ss *session) {
	ol, ok := s.oldLeases[id]
	if !ok || ol.session != ss.hash {
		return
	}
	delete(s.oldLeases, id)
	if lp := s.lapsing[ol.pkgname]; lp != nil {
		delete(s.lapsing, ol.pkgname)
		close(lp.gone)
	}
}

type lease struct {
	Lease
	sess    *session
	slot    *Slot
	state   string // active, reporting, ended
	expires time.Time
	phase   string
	staged  map[string]int64
	done    chan result
	ctx     context.Context
	cancel  context.CancelFunc
	uploads sync.WaitGroup
}

type result struct {
	out *executor.Outcome
	err error
}

// NewServer opens the server on cfg.DB: every lease still active in the
// database (of a pkgsched that died) is marked expired, so its worker is
// fenced, and the store's staging area is emptied.
func NewServer(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DB == nil || cfg.Store == nil {
		return nil, errors.New("pull server: no database or no store")
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = DefaultPollWait
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = DefaultSweep
	}
	if cfg.MaxPackage <= 0 {
		cfg.MaxPackage = MaxPackage
	}
	if cfg.MaxLog <= 0 {
		cfg.MaxLog = MaxLog
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	s := &Server{cfg: cfg, db: cfg.DB, st: cfg.Store, log: cfg.Log,
		sessions: map[string]*session{}, byName: map[string]*session{}, leases: map[string]*lease{},
		wake: make(chan struct{}), regs: make(chan struct{}, 16), stop: make(chan struct{})}
	s.suffix = cfg.Settings.PkgSuffix
	if s.suffix == "" {
		s.suffix = ".tgz"
	}
	set := cfg.Settings
	set.Store, set.StoreAccess, set.Pkgsrc, set.WorkRoot, set.BootstrapKit = "", nil, "", "", ""
	set.SandboxHide, set.Make, set.UnprivUser = nil, "", ""
	s.settings = set
	// Leases of a pkgsched that died may still be building on their
	// workers: their jobs are not handed out again before the old lease
	// would have expired, or its worker heard that it is fenced (so a
	// package is never built twice at once).
	s.lapsing, s.oldLeases = map[string]*lapse{}, map[string]oldLease{}
	rows, err := s.db.QueryContext(ctx, `SELECT id, pkgname, session, expires_at FROM pull_leases WHERE state = 'active'`)
	if err != nil {
		return nil, fmt.Errorf("pull server: read the leases of an earlier run: %w", err)
	}
	margin := min(cfg.LeaseTTL, 5*time.Second)
	for rows.Next() {
		var id, pkg, sess string
		var exp int64
		if err := rows.Scan(&id, &pkg, &sess, &exp); err != nil {
			rows.Close()
			return nil, fmt.Errorf("pull server: read the leases of an earlier run: %w", err)
		}
		// A heartbeat's expiry is written after it is answered: allow
		// for one lost write, never more than a TTL from now.
		until := time.UnixMilli(exp).Add(margin)
		if limit := time.Now().Add(cfg.LeaseTTL + margin); until.After(limit) {
			until = limit
		}
		if time.Until(until) > 0 {
			s.lapsing[pkg] = &lapse{until: until, gone: make(chan struct{})}
			s.oldLeases[id] = oldLease{pkgname: pkg, session: sess}
		}
	}
	rows.Close()
	now := time.Now().UnixMilli()
	if _, err := s.db.ExecContext(ctx, `UPDATE pull_leases SET state = 'expired', ended_at = ? WHERE state = 'active'`, now); err != nil {
		return nil, fmt.Errorf("pull server: fence the leases of an earlier run: %w", err)
	}
	s.attempts = map[string]int{}
	rows, err = s.db.QueryContext(ctx, `SELECT pkgname, MAX(attempt) FROM pull_leases GROUP BY pkgname`)
	if err != nil {
		return nil, fmt.Errorf("pull server: read the leases of earlier runs: %w", err)
	}
	for rows.Next() {
		var n string
		var a int
		if err := rows.Scan(&n, &a); err != nil {
			rows.Close()
			return nil, fmt.Errorf("pull server: read the leases of earlier runs: %w", err)
		}
		s.attempts[n] = a
	}
	rows.Close()
	var stale []string
	err = s.st.List(ctx, StagingPrefix, func(i store.Info) error { stale = append(stale, i.Name); return nil })
	if err != nil && !store.IsNotExist(err) {
		return nil, fmt.Errorf("pull server: list %s in %s: %w", StagingPrefix, s.st, err)
	}
	for _, n := range stale {
		if err := s.st.Delete(ctx, n); err != nil {
			return nil, fmt.Errorf("pull server: remove the staged %s of an earlier run: %w", n, err)
		}
	}
	s.w = newDBWriter(s.db)
	s.wg.Add(1)
	go s.sweeper()
	return s, nil
}

// Close stops the server: open leases are revoked (their Run returns an
// error wrapping executor.ErrLost), polls end with 503.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var ls []*lease
	for _, l := range s.leases {
		ls = append(ls, l)
	}
	s.notifyLocked()
	s.mu.Unlock()
	close(s.stop)
	for _, l := range ls {
		s.finish(l, "revoked", lostErr(l, "the pull server stopped"))
	}
	s.wg.Wait()
	s.w.close()
	return nil
}

func (s *Server) logf(format string, args ...any) {
	fmt.Fprintf(s.log, "pull: "+format+"\n", args...)
}

func (s *Server) notifyLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// LeaseTTL is the lease time-to-live in use.
func (s *Server) LeaseTTL() time.Duration { return s.cfg.LeaseTTL }

// Slot is one waiting worker's place for one job: it implements
// executor.Slot, executor.Accepter and executor.CoreSlot.
type Slot struct {
	s                 *Server
	sess              *session
	idx               int
	name              string
	executor.CoreHold      // reserved from the session's pool
	taken             bool // handed to the scheduler
	dead              bool // the session ended or vanished
	done              bool // given back
}

// Name is "pull:NAME", or "pull:NAME/k" for a worker that runs several
// jobs at once.
func (sl *Slot) Name() string { return sl.name }

// Worker is the worker's name ("pull:NAME").
func (sl *Slot) Worker() string { return sl.sess.worker }

// Accepts is false for a package on the worker's no-way list.
func (sl *Slot) Accepts(pkgpath, pkgname string) bool {
	return !sl.sess.noWay.Refuses(pkgpath, pkgname)
}

// Closed reports whether the slot's worker is gone (its session ended or
// it stopped polling): it will take no job (executor.Closer).
func (sl *Slot) Closed() bool {
	sl.s.mu.Lock()
	defer sl.s.mu.Unlock()
	return sl.dead || sl.sess.ended || sl.s.closed
}

// Release gives the slot back unused: it waits in the queue again while
// its worker still polls.
func (sl *Slot) Release() {
	s := sl.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if sl.done || !sl.taken {
		return
	}
	sl.taken = false
	sl.Return()
	if sl.dead || sl.sess.ended || s.closed {
		sl.drop()
	} else {
		s.queue = append(s.queue, sl)
	}
	s.notifyLocked()
}

// drop ends a slot for good (mu held).
func (sl *Slot) drop() {
	if sl.done {
		return
	}
	sl.done = true
	sl.sess.waiting--
	if sl.idx < len(sl.sess.inUse) {
		sl.sess.inUse[sl.idx] = false
	}
}

// Acquire waits for a worker's slot: one per poll of a worker that can
// take a job, with one of its cores reserved. It fails with an error
// wrapping executor.ErrNoSpace once every connected worker ran out of
// disk space.
func (s *Server) Acquire(ctx context.Context) (*Slot, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, errors.New("pull server closed")
		}
		keep := s.queue[:0]
		var got *Slot
		for _, sl := range s.queue {
			switch {
			case sl.dead || sl.sess.ended || sl.sess.noSpace:
				sl.drop()
			case got == nil && sl.sess.pool.TryTake(1) == 1:
				got = sl
			default:
				keep = append(keep, sl)
			}
		}
		clear(s.queue[len(keep):])
		s.queue = keep
		if got != nil {
			got.taken = true
			got.Hold(1)
			s.mu.Unlock()
			return got, nil
		}
		if s.allNoSpaceLocked() {
			s.mu.Unlock()
			return nil, fmt.Errorf("every pull worker ran out of disk space: %w", executor.ErrNoSpace)
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *Server) allNoSpaceLocked() bool {
	n := 0
	for _, ss := range s.byName {
		if !ss.noSpace {
			return false
		}
		n++
	}
	return n > 0
}

// Capacity is the number of job slots of the workers connected now (not
// out of disk space).
func (s *Server) Capacity() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ss := range s.byName {
		if !ss.noSpace && s.liveLocked(ss) {
			n += ss.slots
		}
	}
	return n
}

// liveLocked: the session polled recently or holds a lease.
func (s *Server) liveLocked(ss *session) bool {
	return !ss.ended && (len(ss.active) > 0 || time.Since(ss.lastSeen) < 2*s.cfg.PollWait+5*time.Second)
}

func lostErr(l *lease, why string) error {
	return &executor.CrashError{Worker: l.slot.name, Reason: fmt.Sprintf("lease %s (attempt %d) of %s: %s", l.ID, l.Attempt, l.PkgName, why), Lost: true}
}

// Run hands j to the slot's worker as a lease and waits for its result.
// It returns an error wrapping executor.ErrLost when the lease expires
// without a heartbeat, the worker releases it, the token is revoked or the
// worker leaves; when ctx ends it revokes the lease and returns ctx's
// error. In every case the lease is fenced in the database before Run
// returns: nothing the worker sends later is accepted.
func (sl *Slot) Run(ctx context.Context, j executor.Job) (*executor.Outcome, error) {
	s := sl.s
	defer sl.giveBack()
	s.mu.Lock()
	dead := sl.dead || sl.sess.ended || s.closed || sl.done
	// A slot the scheduler kept idle (no job it accepted) may outlive
	// its worker's polls.
	gone := !s.liveLocked(sl.sess)
	s.mu.Unlock()
	if dead || gone {
		return nil, &executor.CrashError{Worker: sl.name, Reason: "the worker left before its job was handed over", Lost: true}
	}
	if !sl.Accepts(j.PkgPath, j.PkgName) {
		// The scheduler asks Accepts first; this is the last guard.
		return nil, &executor.CrashError{Worker: sl.name, Reason: fmt.Sprintf("%s (%s) is on the worker's no-way list; not handed over", j.PkgName, j.PkgPath), Lost: true}
	}
	l, err := s.grant(ctx, sl, j)
	if err != nil {
		return nil, err
	}
	timer := time.NewTimer(s.cfg.LeaseTTL)
	defer timer.Stop()
	for {
		select {
		case r := <-l.done:
			return r.out, r.err
		case <-ctx.Done():
			if s.finish(l, "cancelled", nil) {
				return nil, fmt.Errorf("%s: %s: %w", sl.name, j.PkgName, ctx.Err())
			}
			r := <-l.done
			return r.out, r.err
		case <-timer.C:
			s.mu.Lock()
			left := time.Until(l.expires)
			s.mu.Unlock()
			if left > 0 {
				timer.Reset(left)
				continue
			}
			ttl := s.cfg.LeaseTTL
			if s.finish(l, "expired", nil) {
				// A worker that lost its link stops its build once no
				// heartbeat got through for a TTL, by its own clock:
				// give it that moment before the job can go elsewhere.
				grace := min(ttl/10, 5*time.Second)
				s.logf("%s: lease of %s expired (no heartbeat for %v); requeued in %v", sl.sess.worker, j.PkgName, ttl, grace)
				select {
				case <-time.After(grace):
				case <-ctx.Done():
				}
				return nil, lostErr(l, fmt.Sprintf("no heartbeat for %v", ttl))
			}
		}
	}
}

// giveBack returns the slot's cores after Run.
func (sl *Slot) giveBack() {
	s := sl.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sl.Return()
	sl.taken = false
	sl.drop()
	select {
	case sl.sess.kick <- struct{}{}:
	default:
	}
	s.notifyLocked()
}

// grant writes the lease and hands it to the worker's poll.
func (s *Server) grant(ctx context.Context, sl *Slot, j executor.Job) (*lease, error) {
	if err := s.waitLapse(ctx, j.PkgName); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", sl.name, j.PkgName, err)
	}
	id, err := newLeaseID()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	exp := now.Add(s.cfg.LeaseTTL)
	l := &lease{sess: sl.sess, slot: sl, state: "active", expires: exp, staged: map[string]int64{}, done: make(chan result, 1)}
	l.ID, l.PkgName, l.PkgPath, l.Record, l.MakeJobs = id, j.PkgName, j.PkgPath, string(j.Record), j.MakeJobs
	l.Settings = s.settings
	l.Objects = ScopeFor(j.PkgName, s.suffix)
	l.ctx, l.cancel = context.WithCancel(context.Background())
	// Attempts count every lease of the package, across runs: the
	// highest in the database when the server started, then counted here.
	s.mu.Lock()
	s.attempts[j.PkgName]++
	l.Attempt = s.attempts[j.PkgName]
	s.mu.Unlock()
	err = s.w.do(ctx, `INSERT INTO pull_leases (id, pkgname, attempt, session, worker, state, granted_at, expires_at) VALUES (?, ?, ?, ?, ?, 'active', ?, ?)`,
		nil, id, j.PkgName, l.Attempt, sl.sess.hash, sl.sess.worker, now.UnixMilli(), exp.UnixMilli())
	if err != nil {
		l.cancel()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %s: %w", sl.name, j.PkgName, ctx.Err())
		}
		// The database is the server's: not the worker's fault, not the
		// package's; the job is requeued.
		return nil, &executor.CrashError{Worker: sl.name, Reason: fmt.Sprintf("record the lease of %s: %v", j.PkgName, err), Lost: true}
	}
	l.Expires = exp
	s.mu.Lock()
	if sl.sess.ended || s.closed || sl.dead {
		s.mu.Unlock()
		s.dbEnd(l, "revoked")
		l.cancel()
		return nil, &executor.CrashError{Worker: sl.name, Reason: "the worker left before its job was handed over", Lost: true}
	}
	s.leases[id] = l
	sl.sess.active[id] = l
	sl.sess.idleFrom = time.Time{}
	s.deliverLocked(l)
	s.mu.Unlock()
	return l, nil
}

// deliverLocked queues l for the worker's next poll. Leases that ended
// before any poll took them are dropped from the queue to make room.
func (s *Server) deliverLocked(l *lease) {
	ch := l.sess.deliver
	select {
	case ch <- l:
		return
	default:
	}
	var keep []*lease
	for len(ch) > 0 {
		select {
		case old := <-ch:
			if old.state == "active" {
				keep = append(keep, old)
			}
		default:
		}
	}
	for _, k := range append(keep, l) {
		select {
		case ch <- k:
		default:
			s.logf("%s: no room to hand over lease %s of %s; it will expire", l.sess.worker, k.ID, k.PkgName)
		}
	}
}

// finish ends lease l (state for the database: done, expired, released,
// revoked, cancelled) unless something else ended it first; it returns
// whether it did. When r is not nil it is what Run returns.
func (s *Server) finish(l *lease, state string, err error) bool {
	s.mu.Lock()
	if l.state != "active" {
		s.mu.Unlock()
		return false
	}
	l.state = "ended"
	s.forgetLocked(l)
	s.mu.Unlock()
	s.dbEnd(l, state)
	s.dropStaged(l)
	if err != nil {
		l.done <- result{err: err}
	}
	return true
}

func (s *Server) forgetLocked(l *lease) {
	delete(s.leases, l.ID)
	delete(l.sess.active, l.ID)
	if len(l.sess.active) == 0 {
		l.sess.idleFrom = time.Now()
	}
	l.cancel()
}

// dbEnd fences l in the database.
func (s *Server) dbEnd(l *lease, state string) {
	if err := s.w.do(context.Background(), `UPDATE pull_leases SET state = ?, ended_at = ? WHERE id = ? AND state = 'active'`, nil, state, time.Now().UnixMilli(), l.ID); err != nil {
		// Fencing still holds in this process (the lease is gone from
		// memory) and a restart expires every active lease.
		s.logf("record the end (%s) of lease %s of %s: %v", state, l.ID, l.PkgName, err)
	}
}

// dropStaged waits for l's uploads (cancelled by now) and removes what
// they staged.
func (s *Server) dropStaged(l *lease) {
	l.uploads.Wait()
	s.mu.Lock()
	names := make([]string, 0, len(l.staged))
	for n := range l.staged {
		names = append(names, n)
	}
	l.staged = map[string]int64{}
	s.mu.Unlock()
	for _, n := range names {
		if err := s.st.Delete(context.Background(), stagedName(l.ID, n)); err != nil {
			s.logf("remove the staged %s of lease %s: %v", n, l.ID, err)
		}
	}
}

// stagedName is where the lease id's upload of name waits: one flat
// directory (a file store keeps no empty directories per lease), named
// by the kind of object: staging/<id>.package, staging/<id>.fragment,
// staging/<id>.log.<file>.
func stagedName(id, name string) string {
	switch {
	case strings.HasPrefix(name, "All/"):
		return StagingPrefix + id + ".package"
	case strings.HasPrefix(name, "index/"):
		return StagingPrefix + id + ".fragment"
	}
	return StagingPrefix + id + ".log." + path.Base(name)
}

// endSessionLocked ends ss: its slots die, its leases are revoked (their
// Run returns ErrLost), its polls end with code. Returns the leases to
// finish outside the lock.
func (s *Server) endSessionLocked(ss *session, code, msg string) []*lease {
	if ss.ended {
		return nil
	}
	ss.ended, ss.endCode, ss.endMsg = true, code, msg
	close(ss.endCh)
	if s.byName[ss.worker] == ss {
		delete(s.byName, ss.worker)
	}
	for _, sl := range s.queue {
		if sl.sess == ss {
			sl.dead = true
		}
	}
	var ls []*lease
	for _, l := range ss.active {
		ls = append(ls, l)
	}
	s.notifyLocked()
	return ls
}

// endSession ends ss in memory and in the database.
func (s *Server) endSession(ss *session, code, msg string) {
	s.mu.Lock()
	ls := s.endSessionLocked(ss, code, msg)
	s.mu.Unlock()
	if err := s.w.do(context.Background(), `UPDATE pull_sessions SET ended_at = COALESCE(ended_at, ?), end_reason = CASE WHEN end_reason = '' THEN ? ELSE end_reason END WHERE hash = ?`,
		nil, time.Now().UnixMilli(), msg, ss.hash); err != nil {
		s.logf("record the end of %s's session: %v", ss.worker, err)
	}
	for _, l := range ls {
		if !s.finish(l, "revoked", nil) {
			continue
		}
		s.mu.Lock()
		until := l.expires.Add(min(s.cfg.LeaseTTL/10, 5*time.Second))
		s.mu.Unlock()
		s.logf("%s: %s; its job %s is requeued once the worker heard it (at most %v)", ss.worker, msg, l.PkgName, time.Until(until).Round(time.Second))
		// The lease is fenced now; its job goes elsewhere only once the
		// worker was told (its next request is refused: it stops the
		// build) or the lease would have expired anyway.
		go func() {
			t := time.NewTimer(time.Until(until))
			defer t.Stop()
			select {
			case <-ss.told:
			case <-t.C:
			case <-s.stop:
			}
			l.done <- result{err: lostErr(l, msg)}
		}()
	}
}

// tellLocked records that an ended session's worker was refused a
// request: it knows its leases are gone.
func (s *Server) tellLocked(ss *session) {
	if ss.ended && !ss.toldDone {
		ss.toldDone = true
		close(ss.told)
	}
}

// sweeper ends the sessions of revoked tokens and the slots of workers
// that stopped polling.
func (s *Server) sweeper() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Sweep)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.sweep()
	}
}

func (s *Server) sweep() {
	revoked := map[string]bool{}
	rows, err := s.db.Query(`SELECT name FROM pull_tokens WHERE revoked_at IS NOT NULL`)
	if err == nil {
		for rows.Next() {
			var n string
			if rows.Scan(&n) == nil {
				revoked[n] = true
			}
		}
		rows.Close()
	} else {
		s.logf("look for revoked tokens: %v", err)
	}
	s.mu.Lock()
	var end []*session
	for _, ss := range s.byName {
		if revoked[ss.token] {
			end = append(end, ss)
		}
	}
	// Slots of a worker that stopped polling are dropped (it may poll
	// again later and get new ones).
	keep := s.queue[:0]
	for _, sl := range s.queue {
		if !s.liveLocked(sl.sess) {
			sl.drop()
			continue
		}
		keep = append(keep, sl)
	}
	clear(s.queue[len(keep):])
	s.queue = keep
	s.mu.Unlock()
	for _, ss := range end {
		s.endSession(ss, CodeRevoked, "token "+ss.token+" revoked")
	}
}

// WorkerInfo is one connected worker, for status and the autoscaler.
type WorkerInfo struct {
	Name      string            `json:"name"` // pull:NAME
	Token     string            `json:"token"`
	Host      string            `json:"host"`
	Platform  string            `json:"platform"`
	Tree      string            `json:"tree_revision,omitempty"`
	Cores     int               `json:"cores"`
	Slots     int               `json:"slots"`
	Labels    map[string]string `json:"labels,omitempty"`
	Jobs      []string          `json:"jobs,omitempty"` // PKGNAMEs it holds leases of
	Busy      bool              `json:"busy"`
	NoSpace   bool              `json:"no_space,omitempty"`
	Connected time.Time         `json:"connected"`
	LastSeen  time.Time         `json:"last_seen"`
	IdleSince time.Time         `json:"idle_since,omitzero"` // zero while busy
}

// Workers lists the workers with an open session, by name.
func (s *Server) Workers() []WorkerInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]WorkerInfo, 0, len(s.byName))
	for _, ss := range s.byName {
		w := WorkerInfo{Name: ss.worker, Token: ss.token, Host: ss.info.Host, Platform: ss.info.Platform.String(), Tree: ss.info.TreeRevision,
			Cores: ss.pool.Cores(), Slots: ss.slots, Labels: ss.labels, NoSpace: ss.noSpace,
			Connected: ss.created, LastSeen: ss.lastSeen}
		for _, l := range ss.active {
			w.Jobs = append(w.Jobs, l.PkgName)
		}
		sort.Strings(w.Jobs)
		w.Busy = len(w.Jobs) > 0
		if !w.Busy {
			w.IdleSince = ss.idleFrom
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Retire stops giving the worker NAME jobs and ends its session, if it
// holds no lease and no slot of it is in the scheduler's hands; it
// returns false (and changes nothing) otherwise. A worker with no open
// session is retired at once (true).
func (s *Server) Retire(name string) bool {
	s.mu.Lock()
	ss := s.byName[workerName(name)]
	if ss == nil {
		s.mu.Unlock()
		return true
	}
	if len(ss.active) > 0 {
		s.mu.Unlock()
		return false
	}
	// A slot in the scheduler's hands is not in the queue.
	queued := 0
	for _, sl := range s.queue {
		if sl.sess == ss {
			queued++
		}
	}
	if ss.waiting > queued {
		s.mu.Unlock()
		return false
	}
	s.mu.Unlock()
	s.endSession(ss, CodeGone, "retired")
	return true
}

// Gone ends the session of worker NAME whose machine the caller knows to
// be dead (it stopped the VM): its jobs are requeued at once, without
// waiting for the worker to hear of it. Unknown names are ignored.
func (s *Server) Gone(name, why string) {
	s.mu.Lock()
	ss := s.byName[workerName(name)]
	s.mu.Unlock()
	if ss == nil {
		return
	}
	s.endSession(ss, CodeGone, why)
	s.mu.Lock()
	s.tellLocked(ss)
	s.mu.Unlock()
}

// workerName is "pull:"+name unless name has it.
func workerName(name string) string {
	if strings.HasPrefix(name, "pull:") {
		return name
	}
	return "pull:" + name
}

// MintToken makes a registration token for a worker the caller starts (a
// VM): see AddToken. The token is returned once.
func (s *Server) MintToken(ctx context.Context, name string, labels map[string]string, oneSession bool) (string, error) {
	return AddToken(ctx, s.db, name, labels, oneSession)
}

// RevokeToken revokes the token name and ends its sessions now (their
// leases are requeued).
func (s *Server) RevokeToken(ctx context.Context, name string) error {
	if err := RevokeToken(ctx, s.db, name); err != nil {
		return err
	}
	s.mu.Lock()
	var end []*session
	for _, ss := range s.byName {
		if ss.token == name {
			end = append(end, ss)
		}
	}
	s.mu.Unlock()
	for _, ss := range end {
		s.endSession(ss, CodeRevoked, "token "+name+" revoked")
	}
	return nil
}

func encodeInfo(r RegisterRequest) string {
	r.Token = ""
	b, _ := json.Marshal(r)
	return string(b)
}

// SetMeta sets a meta key of the run's database through the server's
// writer, without waiting (a status another part of pkgsched keeps
// there, such as the autoscaler's).
func (s *Server) SetMeta(key, value string) {
	s.w.later(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
}
