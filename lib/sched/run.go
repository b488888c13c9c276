package sched

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/speedup"
)

// DefaultMaxCrashes bounds how often a package's builder may crash in one
// run before the run stops.
const DefaultMaxCrashes = 3

// DefaultMaxLost bounds how often one package's job may be lost with its
// worker (a host down, a link cut: executor.ErrLost) in one run before
// the run stops. It is larger than DefaultMaxCrashes: a lost worker says
// nothing about the job.
const DefaultMaxLost = 10

// DefaultCrashStreak is how many builder crashes in a row stop a run.
const DefaultCrashStreak = 10

// Retry selects packages to reopen at the start of a run.
type Retry string

// The retry choices.
const (
	RetryNone    Retry = ""
	RetryCrashed Retry = "crashed"
	RetryFailed  Retry = "failed"
)

// RunOptions configure Run.
type RunOptions struct {
	Exec  executor.Executor
	Order Order  // default OrderPath
	User  []bool // the user's priority list (ReadPriority), nil for none
	// MaxCrashes stops the run when one package's builder crashed that
	// many times in it (default DefaultMaxCrashes). The package stays
	// queued: a crash (or a lost worker) is a fault of the builders or
	// the store, never a failed build.
	MaxCrashes int
	// MaxLost stops the run when one package's job was lost with its
	// worker that many times in it (default DefaultMaxLost). Losses are
	// counted apart from crashes.
	MaxLost int
	// Cores, when not nil, grants MAKE_JOBS to the jobs handed to slots
	// whose builder declares its cores (executor.CoreSlot): more cores
	// to the jobs on the remaining critical path, one to the others, from
	// each package's speed-up model (lib/speedup, fitted on the history
	// table). nil grants nothing: one core per job, MAKE_JOBS left to
	// pkgrun's settings.
	Cores *CorePolicy
	// CrashStreak stops the run when that many builder runs in a row
	// crashed (default DefaultCrashStreak): pkgrun, its settings or the
	// store are broken, and going on would only crash again.
	CrashStreak int
	// Retry reopens packages a previous run decided: RetryCrashed those
	// that a pkgsched before this one failed after crashes of their
	// builder, RetryFailed every failed, skew and timeout package. Their
	// indirect-failed dependents are reopened too (and failed again by
	// any failure that remains).
	Retry Retry
	// Log receives messages for the operator, one line each, when not
	// nil: the job directories of a killed run removed at the start.
	Log io.Writer
	// Progress receives a one-line status every ProgressEvery (default 1s)
	// when not nil: the terminal's stderr.
	Progress      io.Writer
	ProgressEvery time.Duration
	// HeartbeatEvery is how often the run records in meta that it is
	// alive (default DefaultHeartbeatEvery), for status and the status page.
	HeartbeatEvery time.Duration
	Now            func() time.Time // default time.Now
}

// Summary is what a run did.
type Summary struct {
	Counts      map[State]int `json:"counts"`
	UpToDate    int           `json:"up_to_date"` // done with detail up-to-date
	Jobs        int           `json:"jobs"`       // builder runs started
	Crashes     int           `json:"crashes"`    // builder runs that crashed (lost workers not counted)
	Lost        int           `json:"lost"`       // jobs lost with their worker (a host down, a link cut)
	MultiCore   int           `json:"multi_core"` // jobs granted MAKE_JOBS > 1
	NoSpace     int           `json:"no_space"`   // builder runs that ran out of disk space
	Capacity    int           `json:"capacity"`   // slots (the most seen)
	ElapsedMS   int64         `json:"elapsed_ms"`
	BusyMS      int64         `json:"busy_ms"`     // sum of job wall times
	Utilisation float64       `json:"utilisation"` // BusyMS / slot time while dispatching (capacity sampled over time)
	// Idle slot time split by cause: packages were ready (dispatch
	// latency, the scheduler's own cost) or nothing was ready (the
	// dependency graph's tail, or waiting for running builds).
	IdleReadyMS   int64 `json:"idle_ready_ms"`
	IdleStarvedMS int64 `json:"idle_starved_ms"`
	Interrupted   bool  `json:"interrupted"`
}

// Unfinished is the number of packages neither done nor failed.
func (s *Summary) Unfinished() int { return s.Counts[Open] + s.Counts[InProcessing] }

// Failures is the number of packages that did not build.
func (s *Summary) Failures() int {
	n := 0
	for st, c := range s.Counts {
		if st.Failure() {
			n += c
		}
	}
	return n
}

// Run builds the database's selected packages with opts.Exec until
// nothing is left to start, ctx ends or the database cannot be written.
//
// Every decision is committed before it is acted on: a package is
// in_processing in the database before its builder starts, and a result
// (with the failures it propagates) is committed before any dependent it
// releases is handed out. A run killed at any moment therefore resumes
// from the database: in_processing packages go back to open, everything
// decided stays decided.
//
// When ctx ends, Run stops handing out jobs, cancels the running ones,
// puts them back to open and returns the summary with Interrupted set and
// ctx's error.
func Run(ctx context.Context, d *sql.DB, opts RunOptions) (*Summary, error) {
	if opts.Exec == nil {
		return nil, errors.New("sched.Run: no executor")
	}
	if opts.MaxCrashes <= 0 {
		opts.MaxCrashes = DefaultMaxCrashes
	}
	if opts.MaxLost <= 0 {
		opts.MaxLost = DefaultMaxLost
	}
	if opts.CrashStreak <= 0 {
		opts.CrashStreak = DefaultCrashStreak
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = time.Second
	}
	if opts.HeartbeatEvery <= 0 {
		opts.HeartbeatEvery = DefaultHeartbeatEvery
	}
	now := func() int64 { return opts.Now().UnixMilli() }
	began := opts.Now()

	g, err := LoadGraph(ctx, d)
	if err != nil {
		return nil, err
	}
	state, detail, attempts, crashes, fresh, err := loadStates(ctx, d, g)
	if err != nil {
		return nil, err
	}
	if fresh {
		for i := range state {
			state[i], detail[i] = g.Initial[i], g.Reason[i]
		}
	} else {
		// Jobs still in_processing belong to a run that was killed: their
		// builders are gone (the caller killed any orphan), and what they
		// left goes before anything starts.
		if err := cleanStale(ctx, d, g, opts.Exec, opts.Log, now()); err != nil {
			return nil, err
		}
	}
	var reopened []Change
	if !fresh && opts.Retry != RetryNone {
		reopened = retry(g, opts.Retry, state, detail, crashes)
	}
	hist, err := HistoryDurations(ctx, d)
	if err != nil {
		return nil, err
	}
	if opts.User != nil && len(opts.User) != g.Len() {
		return nil, fmt.Errorf("sched.Run: priority list for %d packages, build set has %d", len(opts.User), g.Len())
	}
	dur := Durations(g, hist)
	keys := Keys(g, dur, opts.Order, opts.User)
	var models []speedup.Model
	if opts.Cores != nil {
		if models, err = Models(ctx, d, g, dur); err != nil {
			return nil, err
		}
	}
	core, changes := NewCore(g, keys, state, detail)
	if fresh {
		forced := false
		for i := range g.Len() {
			if g.Initial[i] == IndirectPrefailed && core.state[i] == Open {
				// pkgdag knows better (e.g. a dependency outside the selection).
				core.state[i] = IndirectPrefailed
				forced = true
			}
		}
		if forced {
			core, _ = NewCore(g, keys, core.state, core.detail)
		}
		if err := initStates(ctx, d, g, core.state, core.detail, now()); err != nil {
			return nil, err
		}
		changes = nil
	}
	led, err := newLedger(ctx, d, g)
	if err != nil {
		return nil, err
	}
	defer led.close()
	if len(reopened) > 0 {
		// Reopened packages that are failed again by a remaining failure
		// show up in changes as well: the retry is committed first.
		if err := led.reopen(ctx, reopened, now()); err != nil {
			return nil, err
		}
	}
	if len(changes) > 0 {
		if err := led.repair(ctx, changes, now()); err != nil {
			return nil, err
		}
	}
	if _, err := d.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES ('pkgsched.slots', ?)`, strconv.Itoa(opts.Exec.Capacity())); err != nil {
		return nil, fmt.Errorf("write meta: %w", err)
	}
	if err := writeHeartbeat(ctx, d, time.Now(), false); err != nil {
		return nil, err
	}
	defer func() { writeHeartbeat(context.WithoutCancel(ctx), d, time.Now(), true) }()

	sum := &Summary{Capacity: opts.Exec.Capacity()}
	r := &runner{ctx: ctx, d: d, g: g, core: core, led: led, opts: opts, now: now,
		attempts: attempts, crashes: crashes, ran: make([]int, g.Len()), lost: make([]int, g.Len()), sum: sum,
		dur: dur, models: models}
	for i := range g.Len() {
		if st, _ := core.State(int32(i)); st == Open {
			r.pending += dur[i]
		}
	}
	err = r.loop()
	sum.BusyMS = r.busy.Milliseconds()
	sum.Counts = make(map[State]int)
	for i := range g.Len() {
		st, det := core.State(int32(i))
		sum.Counts[st]++
		if st == Done && det == "up-to-date" {
			sum.UpToDate++
		}
	}
	elapsed := opts.Now().Sub(began)
	sum.ElapsedMS = elapsed.Milliseconds()
	if r.slotTime > 0 {
		sum.Utilisation = float64(r.busy) / float64(r.slotTime)
	}
	if err == nil && ctx.Err() != nil {
		sum.Interrupted = true
		err = &InterruptedError{Left: sum.Unfinished(), Err: ctx.Err()}
	}
	return sum, err
}

// InterruptedError is Run's error when its context ended (SIGINT,
// SIGTERM): the running jobs went back to the queue, and the next run
// resumes.
type InterruptedError struct {
	Left int   // packages left to build; 0 when not known
	Err  error // the context's error
}

func (e *InterruptedError) Error() string {
	if e.Left > 0 {
		return fmt.Sprintf("interrupted; run it again to resume (%d packages left to build)", e.Left)
	}
	return "interrupted; run it again to resume"
}

// Unwrap returns the context's error.
func (e *InterruptedError) Unwrap() error { return e.Err }

type runner struct {
	ctx      context.Context
	d        *sql.DB
	g        *Graph
	core     *Core
	led      *ledger
	opts     RunOptions
	now      func() int64
	attempts []int
	crashes  []int           // crashes of each package's builder, all runs (build_state.crashes)
	ran      []int           // crashes of each package's builder in this run
	lost     []int           // losses of each package's job with its worker in this run
	dur      []int64         // one-core estimates (ms)
	models   []speedup.Model // speed-up models (nil: no core policy)
	pending  int64           // one-core estimates of the open packages summed
	began    map[int32]time.Time
	// parked are slots that refused every ready job (executor.Accepter):
	// kept, not given back, until a job they take becomes ready.
	parked    []parkedSlot
	sum       *Summary
	running   map[int32]string
	busy      time.Duration
	streak    int           // builder crashes in a row
	lastCrash error         // the last of them
	slotTime  time.Duration // slots × time, summed while dispatching
}

type parkedSlot struct {
	slot    executor.Slot
	acc     executor.Accepter
	offered uint64 // Core.Readied when it last refused every ready job
}

type acquired struct {
	slot executor.Slot
	err  error
}

type finished struct {
	node       int32
	worker     string
	start, end time.Time
	out        *executor.Outcome
	err        error
}

func (r *runner) loop() error {
	// Jobs run under jobCtx: the caller's ctx, or a fatal error here.
	jobCtx, cancelJobs := context.WithCancel(r.ctx)
	defer cancelJobs()
	// Database writes must still happen after an interrupt.
	dbCtx := context.WithoutCancel(r.ctx)
	r.running = make(map[int32]string)
	r.began = make(map[int32]time.Time)
	defer r.releaseParked()
	acqCh := make(chan acquired, 1)
	results := make(chan finished)
	acquiring := false
	acqCancel := context.CancelFunc(func() {})
	defer func() { acqCancel() }()
	stopping := false
	var fatal error
	stop := func(err error) {
		if fatal == nil && err != nil {
			fatal = err
		}
		stopping = true
		acqCancel()
		cancelJobs()
		r.releaseParked()
	}
	done := r.ctx.Done()
	var tick <-chan time.Time
	if r.opts.Progress != nil {
		t := time.NewTicker(r.opts.ProgressEvery)
		defer t.Stop()
		tick = t.C
	}
	beat := time.NewTicker(r.opts.HeartbeatEvery)
	defer beat.Stop()
	beatFailed := false
	last := r.opts.Now()
	var idleReady, idleStarved time.Duration
	defer func() {
		r.sum.IdleReadyMS, r.sum.IdleStarvedMS = idleReady.Milliseconds(), idleStarved.Milliseconds()
	}()
	idle, ready := 0, false // what the slots were doing since last
	slots := r.opts.Exec.Capacity()
	// The demand signal, for executors that start and stop machines.
	dm, _ := r.opts.Exec.(executor.Demander)
	var lastDemand executor.Demand
	for {
		// Account idle slots since the last event by cause, with the state
		// they had until now; then note the state from now on. Capacity
		// is sampled because an elastic executor's changes.
		t := r.opts.Now()
		r.slotTime += time.Duration(slots) * t.Sub(last)
		if idle > 0 {
			if ready {
				idleReady += time.Duration(idle) * t.Sub(last)
			} else {
				idleStarved += time.Duration(idle) * t.Sub(last)
			}
		}
		last = t
		slots = r.opts.Exec.Capacity()
		r.sum.Capacity = max(r.sum.Capacity, slots)
		idle, ready = 0, r.core.Ready() > 0
		if dm != nil {
			d := executor.Demand{Ready: r.core.Ready(), Running: len(r.running)}
			if i, ok := r.core.Peek(); ok {
				d.CriticalPath = time.Duration(r.core.key[i].Path) * time.Millisecond
			}
			if stopping {
				d.Ready = 0
			}
			if d != lastDemand {
				dm.Demand(d)
				lastDemand = d
			}
		}
		if !stopping {
			idle = max(slots-len(r.running), 0)
		}
		if !stopping && len(r.parked) > 0 && r.core.Ready() > 0 {
			// Jobs became ready since the parked slots refused all:
			// offer them again.
			if err := r.offerParked(jobCtx, dbCtx, results); err != nil {
				stop(err)
				continue
			}
			if err := r.allRefused(slots); err != nil {
				stop(err)
				continue
			}
		}
		if !stopping && !acquiring && r.core.Ready() > 0 {
			actx, cancel := context.WithCancel(jobCtx)
			acqCancel = cancel
			acquiring = true
			go func() {
				s, err := r.opts.Exec.Acquire(actx)
				acqCh <- acquired{s, err}
			}()
		}
		if len(r.running) == 0 && !acquiring {
			break
		}
		select {
		case a := <-acqCh:
			acquiring = false
			acqCancel()
			if a.err != nil {
				switch {
				case stopping || r.ctx.Err() != nil:
				case errors.Is(a.err, executor.ErrNoSpace):
					stop(fmt.Errorf("stopping: %w. Free disk space on the builders and run pkgsched again to resume (%d jobs ran out of space and are queued again; none was counted as failed or crashed)", a.err, r.sum.NoSpace))
				default:
					stop(fmt.Errorf("executor: %w", a.err))
				}
				continue
			}
			if stopping || r.core.Ready() == 0 {
				a.slot.Release()
				continue
			}
			i, ok := r.pop(a.slot)
			if !ok {
				// The slot takes none of the ready jobs: keep it idle
				// until one it takes becomes ready.
				acc := a.slot.(executor.Accepter)
				r.parked = append(r.parked, parkedSlot{slot: a.slot, acc: acc, offered: r.core.Readied()})
				continue
			}
			if err := r.dispatch(jobCtx, dbCtx, i, a.slot, results); err != nil {
				stop(err)
			}
		case f := <-results:
			delete(r.running, f.node)
			delete(r.began, f.node)
			if err := r.handle(dbCtx, jobCtx, f); err != nil {
				stop(err)
			}
			if r.streak >= r.opts.CrashStreak && !stopping {
				stop(fmt.Errorf("%d builder runs in a row crashed; stopping (no package was marked failed).\n"+
					"  Check pkgrun, its settings and the store, then run pkgsched again to resume.\n"+
					"  last crash: %w%s", r.streak, r.lastCrash, stderrTail(r.lastCrash)))
			}
		case <-done:
			done = nil
			stop(nil)
		case <-tick:
			r.progress(false)
		case t := <-beat.C:
			if err := writeHeartbeat(dbCtx, r.d, t, false); err != nil && !beatFailed && r.opts.Log != nil {
				beatFailed = true
				fmt.Fprintf(r.opts.Log, "pkgsched: %v\n", err)
			}
		}
	}
	if r.opts.Progress != nil {
		r.progress(true)
	}
	return fatal
}

// pop takes the best ready job that slot takes (every job when it is not
// an executor.Accepter).
func (r *runner) pop(slot executor.Slot) (int32, bool) {
	acc, ok := slot.(executor.Accepter)
	if !ok {
		return r.core.Pop()
	}
	return r.core.PopAccepted(func(i int32) bool { return acc.Accepts(r.g.Path[i], r.g.Name[i]) })
}

// offerParked gives the parked slots the best ready jobs they take, for
// the slots that have not refused the ready set as it is now, and gives
// back those whose builder is gone (executor.Closer).
func (r *runner) offerParked(jobCtx, dbCtx context.Context, results chan<- finished) error {
	keep := r.parked[:0]
	var err error
	for k, p := range r.parked {
		if c, ok := p.slot.(executor.Closer); ok && c.Closed() {
			p.slot.Release() // its builder is gone: it will take no job
			continue
		}
		if err != nil || r.core.Ready() == 0 || p.offered == r.core.Readied() {
			keep = append(keep, r.parked[k])
			continue
		}
		i, ok := r.core.PopAccepted(func(i int32) bool { return p.acc.Accepts(r.g.Path[i], r.g.Name[i]) })
		if !ok {
			p.offered = r.core.Readied()
			keep = append(keep, p)
			continue
		}
		err = r.dispatch(jobCtx, dbCtx, i, p.slot, results)
	}
	clear(r.parked[len(keep):])
	r.parked = keep
	return err
}

// allRefused is the error that stops a run whose ready jobs no builder
// takes: nothing runs, every slot of the executor is parked and each of
// them refused every ready job.
func (r *runner) allRefused(capacity int) error {
	if len(r.running) > 0 || r.core.Ready() == 0 || len(r.parked) < capacity {
		return nil
	}
	if g, ok := r.opts.Exec.(executor.Grower); ok && g.MayGrow() {
		return nil // a builder that takes them may still come
	}
	for _, p := range r.parked {
		if p.offered != r.core.Readied() {
			return nil
		}
	}
	var names []string
	for _, i := range r.core.ReadyNodes() {
		names = append(names, r.g.Name[i])
	}
	const show = 20
	list := strings.Join(names[:min(len(names), show)], ", ")
	if len(names) > show {
		list += fmt.Sprintf(" and %d more", len(names)-show)
	}
	return &RefusedError{Packages: names, msg: fmt.Sprintf("no builder takes %d ready packages (every slot's no-way list or labels refuse them): %s.\n"+
		"  They stay queued and are not marked failed. Add a builder that takes them, or change the no-way lists, and run pkgsched again to resume.", len(names), list)}
}

// RefusedError stops a run when every builder refuses every ready
// package (their no-way lists). The packages stay queued (open).
type RefusedError struct {
	Packages []string
	msg      string
}

func (e *RefusedError) Error() string { return e.msg }

// releaseParked gives every parked slot back.
func (r *runner) releaseParked() {
	for _, p := range r.parked {
		p.slot.Release()
	}
	clear(r.parked)
	r.parked = r.parked[:0]
}

// grant decides the MAKE_JOBS of job i on a slot of a builder with cores
// (see CorePolicy) and grows the slot for it; 0 when no policy is set.
func (r *runner) grant(i int32, cs executor.CoreSlot) int {
	if r.opts.Cores == nil || r.models == nil {
		return 0
	}
	free := cs.FreeCores()
	if free <= 0 {
		return 1
	}
	now := r.opts.Now()
	keys := r.core.key
	longest := keys[i].Path
	if j, ok := r.core.Peek(); ok {
		longest = max(longest, keys[j].Path)
	}
	work := r.pending + r.dur[i] // the open packages' work, this one's included
	for j, t := range r.began {
		rem := max(r.dur[j]-now.Sub(t).Milliseconds(), 0)
		work += rem
		longest = max(longest, rem+keys[j].Path-r.dur[j])
	}
	capacity := max(r.opts.Exec.Capacity(), 1)
	bound := work/int64(capacity) >= longest
	spare := free - r.core.Ready()
	n := r.opts.Cores.Grant(r.models[i], keys[i].Path, longest, 1+free, spare, bound)
	if n <= 1 {
		return 1
	}
	return 1 + cs.Grow(n-1)
}

// withMakeJobs is rec with a MAKE_JOBS=n line appended (pkgrun's
// lib/build reads the last one).
func withMakeJobs(rec []byte, n int) []byte {
	out := make([]byte, 0, len(rec)+16)
	out = append(out, rec...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, "MAKE_JOBS="+strconv.Itoa(n)+"\n"...)
}

func (r *runner) dispatch(jobCtx, dbCtx context.Context, i int32, slot executor.Slot, results chan<- finished) error {
	r.pending -= r.dur[i]
	rec, err := r.led.record(dbCtx, i)
	makeJobs := 0
	if cs, ok := slot.(executor.CoreSlot); ok && err == nil {
		if makeJobs = r.grant(i, cs); makeJobs > 0 {
			rec = withMakeJobs(rec, makeJobs)
		}
	}
	if err == nil {
		err = r.led.start(dbCtx, i, slot.Name(), r.now())
	}
	if err != nil {
		slot.Release()
		r.account(r.core.Requeue(i, ""))
		return err
	}
	if makeJobs > 1 {
		r.sum.MultiCore++
	}
	r.attempts[i]++
	r.sum.Jobs++
	r.running[i] = slot.Name()
	r.began[i] = r.opts.Now()
	j := executor.Job{PkgName: r.g.Name[i], PkgPath: r.g.Path[i], Record: rec, Attempt: r.attempts[i], MakeJobs: makeJobs}
	go func() {
		start := r.opts.Now()
		out, err := slot.Run(jobCtx, j)
		results <- finished{node: i, worker: slot.Name(), start: start, end: r.opts.Now(), out: out, err: err}
	}()
	return nil
}

func (r *runner) handle(dbCtx, jobCtx context.Context, f finished) error {
	i := f.node
	r.busy += max(f.end.Sub(f.start), 0)
	wall := max(f.end.Sub(f.start).Milliseconds(), 0)
	o := outcome{at: f.end.UnixMilli(), wallMS: wall}
	var changes []Change
	switch {
	case f.err == nil && f.out != nil && f.out.Result != nil:
		res := f.out.Result
		st, detail := stateOf(res)
		if b, err := json.Marshal(res); err == nil {
			o.result = b
		}
		hw := res.WallMS
		if hw <= 0 {
			hw = wall
		}
		o.hist = historyOf(res, hw)
		changes = r.core.Finish(i, st, detail)
		r.account(changes...)
		r.streak = 0
	case jobCtx.Err() != nil:
		// Interrupted (or stopped by a fatal error): not the builder's fault.
		changes = []Change{r.core.Requeue(i, "interrupted")}
		r.account(changes...)
	case errors.Is(f.err, executor.ErrNoSpace):
		// The builder's disk, not the job: no crash, no failure. The
		// executor retires that builder.
		r.sum.NoSpace++
		o.event = "nospace"
		changes = []Change{r.core.Requeue(i, f.err.Error())}
		r.account(changes...)
	default:
		// The builder crashed or its worker was lost: the job goes back
		// to the queue, whatever happens. Too many crashes of one job
		// stop the run (the builders or the store are broken); they
		// never make the package failed.
		err := f.err
		if err == nil {
			err = &executor.CrashError{Worker: f.worker, Reason: "executor returned neither result nor error"}
		}
		if errors.Is(err, executor.ErrLost) {
			// A lost worker (a host down, a link cut) says nothing about
			// the job or the builders in general: the executor backs off
			// from that host, and one host with many slots must not
			// stop the run. Losses have their own, larger bound.
			r.lost[i]++
			r.sum.Lost++
			o.event = "lost"
			changes = []Change{r.core.Requeue(i, fmt.Sprintf("lost %d of %d in this run: %v", r.lost[i], r.opts.MaxLost, err))}
			r.account(changes...)
			if r.lost[i] >= r.opts.MaxLost {
				if lerr := r.led.finish(dbCtx, changes, o); lerr != nil {
					return lerr
				}
				return &LostLimitError{PkgName: r.g.Name[i], Lost: r.lost[i], Err: err}
			}
			break
		}
		r.crashes[i]++
		r.ran[i]++
		r.sum.Crashes++
		o.crash = true
		o.event = "crash"
		r.streak++
		r.lastCrash = err
		changes = []Change{r.core.Requeue(i, fmt.Sprintf("crash %d of %d in this run: %v", r.ran[i], r.opts.MaxCrashes, err))}
		r.account(changes...)
		if r.ran[i] >= r.opts.MaxCrashes {
			if lerr := r.led.finish(dbCtx, changes, o); lerr != nil {
				return lerr
			}
			return &CrashLimitError{PkgName: r.g.Name[i], Crashes: r.ran[i], Err: err}
		}
	}
	return r.led.finish(dbCtx, changes, o)
}

// account keeps the open packages' estimated work up to date.
func (r *runner) account(changes ...Change) {
	for _, c := range changes {
		if c.From == Open {
			r.pending -= r.dur[c.Node]
		}
		if c.To == Open {
			r.pending += r.dur[c.Node]
		}
	}
}

// LostLimitError stops a run when one package's job was lost with its
// worker MaxLost times in it. The package stays queued (open).
type LostLimitError struct {
	PkgName string
	Lost    int
	Err     error // the last loss
}

func (e *LostLimitError) Error() string {
	return fmt.Sprintf("%s: its job was lost with its worker %d times in this run; stopping.\n"+
		"  %s stays queued and is not marked failed: a lost worker (a host down, a link cut) is not the package's fault.\n"+
		"  Check the builders' hosts and network, then run pkgsched again to resume (--max-lost raises the bound).\n"+
		"  last loss: %v", e.PkgName, e.Lost, e.PkgName, e.Err)
}

// Unwrap returns the last loss.
func (e *LostLimitError) Unwrap() error { return e.Err }

// CrashLimitError stops a run when one package's builder crashed
// MaxCrashes times in it. The package stays queued (open).
type CrashLimitError struct {
	PkgName string
	Crashes int
	Err     error // the last crash
}

func (e *CrashLimitError) Error() string {
	times := fmt.Sprintf("%d times", e.Crashes)
	if e.Crashes == 1 {
		times = "once"
	}
	return fmt.Sprintf("%s: its builder crashed %s in this run; stopping.\n"+
		"  %s stays queued and is not marked failed: a crash is a fault of pkgrun, the builders or the store, not of the package.\n"+
		"  Fix that and run pkgsched again to resume.\n"+
		"  last crash: %v%s", e.PkgName, times, e.PkgName, e.Err, stderrTail(e.Err))
}

// Unwrap returns the last crash.
func (e *CrashLimitError) Unwrap() error { return e.Err }

// stderrTail formats the last lines of a crashed builder's stderr, for
// the message that stops a run; "" when there is none.
func stderrTail(err error) string {
	var ce *executor.CrashError
	if !errors.As(err, &ce) {
		return ""
	}
	lines := strings.Split(strings.TrimRight(ce.Stderr, "\n"), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	var b strings.Builder
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			b.WriteString("\n    " + l)
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return "\n  the builder's last lines on stderr:" + b.String()
}

func (r *runner) progress(final bool) {
	c := r.core
	n := r.g.Len()
	dec := n - c.Count(Open) - c.Count(InProcessing)
	end := "\r"
	if final {
		end = "\n"
	}
	fmt.Fprintf(r.opts.Progress, "\x1b[2K[%d/%d] running %d, ready %d, done %d, failed %d, indirect %d%s",
		dec, n, len(r.running), c.Ready(), c.Count(Done),
		c.Count(Failed)+c.Count(Skew)+c.Count(Timeout)+c.Count(Prefailed),
		c.Count(IndirectFailed)+c.Count(IndirectPrefailed), end)
}

// retry reopens the packages selected by what, and every indirect-failed
// package (NewCore fails again those that still depend on a failure).
func retry(g *Graph, what Retry, state []State, detail []string, crashes []int) []Change {
	var out []Change
	for i := range state {
		st := state[i]
		reopen := st == IndirectFailed
		switch what {
		case RetryFailed:
			reopen = reopen || st == Failed || st == Skew || st == Timeout
		case RetryCrashed:
			reopen = reopen || (st == Failed && crashes[i] > 0 && strings.HasPrefix(detail[i], "builder crashed"))
		}
		if reopen {
			out = append(out, Change{Node: int32(i), From: st, To: Open, Detail: "retry " + string(what)})
			state[i], detail[i] = Open, ""
			if st != IndirectFailed {
				crashes[i] = 0
			}
		}
	}
	return out
}
