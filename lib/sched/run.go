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
)

// DefaultMaxCrashes bounds how often a package's builder may crash in one
// run before the run stops.
const DefaultMaxCrashes = 3

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
	Crashes     int           `json:"crashes"`    // builder runs that crashed
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
	keys := Keys(g, Durations(g, hist), opts.Order, opts.User)
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
		attempts: attempts, crashes: crashes, ran: make([]int, g.Len()), sum: sum}
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
	ctx       context.Context
	d         *sql.DB
	g         *Graph
	core      *Core
	led       *ledger
	opts      RunOptions
	now       func() int64
	attempts  []int
	crashes   []int // crashes of each package's builder, all runs (build_state.crashes)
	ran       []int // crashes of each package's builder in this run
	sum       *Summary
	running   map[int32]string
	busy      time.Duration
	streak    int           // builder crashes in a row
	lastCrash error         // the last of them
	slotTime  time.Duration // slots × time, summed while dispatching
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
			i, ok := r.core.Pop()
			if stopping || !ok {
				if ok {
					r.core.Requeue(i, "")
				}
				a.slot.Release()
				continue
			}
			if err := r.dispatch(jobCtx, dbCtx, i, a.slot, results); err != nil {
				stop(err)
			}
		case f := <-results:
			delete(r.running, f.node)
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

func (r *runner) dispatch(jobCtx, dbCtx context.Context, i int32, slot executor.Slot, results chan<- finished) error {
	rec, err := r.led.record(dbCtx, i)
	if err == nil {
		err = r.led.start(dbCtx, i, slot.Name(), r.now())
	}
	if err != nil {
		slot.Release()
		r.core.Requeue(i, "")
		return err
	}
	r.attempts[i]++
	r.sum.Jobs++
	r.running[i] = slot.Name()
	j := executor.Job{PkgName: r.g.Name[i], PkgPath: r.g.Path[i], Record: rec, Attempt: r.attempts[i]}
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
		o.hist = &histRow{state: string(res.Status), wallMS: hw, cpuMS: res.CPUMS}
		changes = r.core.Finish(i, st, detail)
		r.streak = 0
	case jobCtx.Err() != nil:
		// Interrupted (or stopped by a fatal error): not the builder's fault.
		changes = []Change{r.core.Requeue(i, "interrupted")}
	case errors.Is(f.err, executor.ErrNoSpace):
		// The builder's disk, not the job: no crash, no failure. The
		// executor retires that builder.
		r.sum.NoSpace++
		o.event = "nospace"
		changes = []Change{r.core.Requeue(i, f.err.Error())}
	default:
		// The builder crashed or its worker was lost: the job goes back
		// to the queue, whatever happens. Too many crashes of one job
		// stop the run (the builders or the store are broken); they
		// never make the package failed.
		err := f.err
		if err == nil {
			err = &executor.CrashError{Worker: f.worker, Reason: "executor returned neither result nor error"}
		}
		r.crashes[i]++
		r.ran[i]++
		r.sum.Crashes++
		o.crash = true
		o.event = "crash"
		// A lost worker (a host down, a link cut) says nothing about
		// the builders in general: the executor backs off from that
		// host, and one host with many slots must not stop the run.
		if !errors.Is(err, executor.ErrLost) {
			r.streak++
			r.lastCrash = err
		}
		changes = []Change{r.core.Requeue(i, fmt.Sprintf("crash %d of %d in this run: %v", r.ran[i], r.opts.MaxCrashes, err))}
		if r.ran[i] >= r.opts.MaxCrashes {
			if lerr := r.led.finish(dbCtx, changes, o); lerr != nil {
				return lerr
			}
			return &CrashLimitError{PkgName: r.g.Name[i], Crashes: r.ran[i], Err: err}
		}
	}
	return r.led.finish(dbCtx, changes, o)
}

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
