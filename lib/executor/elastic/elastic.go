// Package elastic is the executor of elastic builders: the pull executor
// (lib/executor/pullexec) whose workers run on machines that an autoscaler
// (lib/autoscale) starts through a provider (lib/provider) when the
// scheduler has work for them and stops once they are idle. Opened from
//
//	elastic:KIND?max=4&min=0&boot=60s&idle=60s&budget=10h&spot=true&preempt=2
//	        &spot-fallback=on-demand&spot-retry=5m
//	        &listen=127.0.0.1:0&url=https://HOST:PORT&ttl=5m&poll=30s&label=K=V
//	        &PROVIDER SETTINGS
//
// KIND is a provider of lib/provider/provideropen (process, qemu, ec2).
// max and min bound the machines billed at once and the builders kept,
// boot is how long one takes to join (the first guess: the autoscaler
// then learns it from the joins), idle how long one may have no job
// before it is stopped, budget the builder time all of them may bill
// (then no job is handed out and the run stops with the rest open), spot
// asks for preemptible machines and preempt is how many losses on them
// send a job to an on-demand one. When the provider has no spot capacity,
// spot-fallback=on-demand (the default) starts on-demand builders
// instead and wait starts none; spot is asked for again after
// spot-retry (5m, doubled while it stays short).
// listen, ttl, poll, cert, key, tree and platform are the pull server's
// (see pullexec); url is the server as the machines reach it (default:
// as listened on). label adds a worker label (repeatable). tick is how
// often the autoscaler looks at the workers (1s), list how often it lists
// the provider's machines to notice lost ones (15s). Every machine
// carries the database's path as its run tag: at start the machines an
// earlier master of this database left are stopped, and at Close all.
package elastic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/autoscale"
	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/pullexec"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/provider"
	"github.com/pkgbulk/pkgbulk/lib/provider/provideropen"
	"github.com/pkgbulk/pkgbulk/lib/pull"
)

// ErrBudget is returned by Acquire once the budget of builder time is spent.
var ErrBudget = errors.New("the builder-time budget is spent: no more jobs are handed out; raise budget= and run again to resume")

// Config configures an executor.
type Config struct {
	Pull     *pullexec.Executor // closed by Close
	Provider provider.Provider  // closed by Close
	Policy   autoscale.Policy
	Run      string            // the run tag: the database's path
	URL      string            // the pull server as machines reach it (default Pull.URL())
	Labels   map[string]string // more worker labels
	// Tick, JoinTimeout and ListEvery tune the driver (see
	// autoscale.DriverConfig; zero: its defaults).
	Tick, JoinTimeout, ListEvery time.Duration
	Log                          io.Writer
	// Preempts are the jobs already lost on spot machines, by PKGNAME
	// (from the database: see LostOnSpot), so that the on-demand rule
	// holds across a restart of pkgsched.
	Preempts map[string]int
}

// Executor hands out the slots of the pull workers on elastic machines.
type Executor struct {
	pull   *pullexec.Executor
	prov   provider.Provider
	drv    *autoscale.Driver
	pol    autoscale.Policy
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error

	mu       sync.Mutex
	preempts map[string]int // PKGNAME -> jobs lost on spot builders
	// held are the slots the scheduler holds, by worker name: acquired
	// and neither run nor released (a parked one refuses the ready jobs).
	held map[string]map[*slot]bool
	// withdrawn are the workers retired while the scheduler held a slot
	// of theirs: those slots take no job any more.
	withdrawn map[string]bool
	// draining are the workers the autoscaler drains: their slots take
	// no new job (autoscale.Pool.Drain).
	draining map[string]bool
}

// New starts the autoscaler (it first stops what an earlier master of
// the same run left).
func New(ctx context.Context, cfg Config) (*Executor, error) {
	if cfg.Pull == nil || cfg.Provider == nil {
		return nil, errors.New("executor elastic: no pull executor or no provider")
	}
	wc := provider.WorkerConfig{ServerURL: cfg.URL, Fingerprint: cfg.Pull.Fingerprint(), Labels: cfg.Labels}
	if wc.ServerURL == "" {
		wc.ServerURL = cfg.Pull.URL()
	}
	e := &Executor{pull: cfg.Pull, prov: cfg.Provider, pol: cfg.Policy.Defaults(), done: make(chan error, 1), preempts: map[string]int{},
		held: map[string]map[*slot]bool{}, withdrawn: map[string]bool{}, draining: map[string]bool{}}
	for k, v := range cfg.Preempts {
		e.preempts[k] = v
	}
	drv, err := autoscale.NewDriver(autoscale.DriverConfig{Policy: cfg.Policy, Provider: cfg.Provider, Pool: pool{e},
		Worker: wc, Run: cfg.Run, Tick: cfg.Tick, JoinTimeout: cfg.JoinTimeout, ListEvery: cfg.ListEvery, Log: cfg.Log})
	if err != nil {
		return nil, fmt.Errorf("executor elastic: %w", err)
	}
	e.drv = drv
	drv.SetNeedOnDemand(e.needOnDemand())
	// Orphans first, before any job is handed out.
	if _, err := drv.Reap(ctx); err != nil {
		return nil, fmt.Errorf("executor elastic: %w", err)
	}
	dctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- drv.Run(dctx) }()
	go e.keepStatus(dctx)
	return e, nil
}

// statusEvery is how often the autoscaler's status is written to the
// database's meta (autoscale.MetaStatus) for pkgsched status.
const statusEvery = 5 * time.Second

// keepStatus writes the status until ctx ends (Close writes the last).
func (e *Executor) keepStatus(ctx context.Context) {
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	for {
		e.writeStatus(false)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *Executor) writeStatus(stopped bool) {
	st := autoscale.NewStatus(e.prov.Name(), e.pol, e.drv.Stats(), time.Now())
	st.Stopped = stopped
	if b, err := json.Marshal(st); err == nil {
		e.pull.Server().SetMeta(autoscale.MetaStatus, string(b))
	}
}

// Open opens elastic:KIND?... for the database at dbPath (see the package
// documentation).
func Open(ctx context.Context, spec string, settings job.Settings, dbPath, pkgrun string, log io.Writer) (*Executor, error) {
	rest, ok := strings.CutPrefix(spec, "elastic:")
	if !ok {
		return nil, fmt.Errorf("executor %s: want elastic:KIND?max=N", spec)
	}
	kind, query, _ := strings.Cut(rest, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("executor %s: %w", spec, err)
	}
	pol, labels, err := parsePolicy(spec, q)
	if err != nil {
		return nil, err
	}
	var tick, list time.Duration
	for k, d := range map[string]*time.Duration{"tick": &tick, "list": &list} {
		if v := q.Get(k); v != "" {
			if *d, err = time.ParseDuration(v); err != nil || *d < 10*time.Millisecond {
				return nil, fmt.Errorf("executor %s: %s=%q: want a Go duration such as 1s", spec, k, v)
			}
		}
		delete(q, k)
	}
	pullSpec, machineURL := pullSpec(q)
	prov, err := provideropen.Open(kind, q, provideropen.Env{Dir: dbPath + ".builders", Pkgrun: pkgrun, Log: log})
	if err != nil {
		return nil, fmt.Errorf("executor %s: %w", spec, err)
	}
	if err := provideropen.Unknown(spec, q); err != nil {
		prov.Close()
		return nil, err
	}
	px, err := pullexec.Open(ctx, pullSpec, settings, dbPath, log)
	if err != nil {
		prov.Close()
		return nil, fmt.Errorf("executor %s: %w", spec, err)
	}
	pre, err := LostOnSpot(ctx, dbPath)
	if err != nil {
		px.Close()
		prov.Close()
		return nil, fmt.Errorf("executor %s: %w", spec, err)
	}
	e, err := New(ctx, Config{Pull: px, Provider: prov, Policy: pol, Run: dbPath, URL: machineURL, Labels: labels,
		Tick: tick, ListEvery: list, Log: log, Preempts: pre})
	if err != nil {
		px.Close()
		prov.Close()
		return nil, err
	}
	return e, nil
}

// parsePolicy takes the autoscaler's settings and the labels out of q.
func parsePolicy(spec string, q url.Values) (autoscale.Policy, map[string]string, error) {
	p := autoscale.Policy{Max: 1, Boot: time.Minute}
	labels := map[string]string{}
	for _, k := range []string{"min", "max", "preempt", "slots", "boot", "idle", "budget", "spot", "spot-fallback", "spot-retry", "worth", "label"} {
		vs, ok := q[k]
		if !ok {
			continue
		}
		delete(q, k)
		v := vs[len(vs)-1]
		bad := func(want string) error { return fmt.Errorf("executor %s: %s=%q: want %s", spec, k, v, want) }
		switch k {
		case "min", "max", "preempt", "slots":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return p, nil, bad("a number")
			}
			switch k {
			case "min":
				p.Min = n
			case "max":
				p.Max = n
			case "preempt":
				p.PreemptLimit = n
			case "slots":
				p.Slots = n
			}
		case "boot", "idle", "spot-retry":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return p, nil, bad("a Go duration such as 60s")
			}
			switch k {
			case "boot":
				p.Boot = d
			case "idle":
				p.Idle = d
			default:
				p.SpotRetry = d
			}
		case "spot-fallback":
			switch v {
			case "on-demand":
				p.SpotWait = false
			case "wait":
				p.SpotWait = true
			default:
				return p, nil, bad("on-demand or wait")
			}
		case "budget":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return p, nil, bad("builder time as a Go duration such as 10h")
			}
			p.Budget = d
		case "spot":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return p, nil, bad("true or false")
			}
			p.Spot = b
		case "worth":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f <= 0 {
				return p, nil, bad("a positive number")
			}
			p.Worth = f
		case "label":
			for _, kv := range vs {
				lk, lv, ok := strings.Cut(kv, "=")
				if !ok || lk == "" {
					return p, nil, fmt.Errorf("executor %s: label=%q: want K=V", spec, kv)
				}
				labels[lk] = lv
			}
		}
	}
	if err := p.Check(); err != nil {
		return p, nil, fmt.Errorf("executor %s: %w", spec, err)
	}
	return p, labels, nil
}

// pullSpec takes the pull server's settings out of q as a pull:// spec,
// and url (how machines reach it).
func pullSpec(q url.Values) (string, string) {
	listen := "127.0.0.1:0"
	if v := q.Get("listen"); v != "" {
		listen = v
	}
	delete(q, "listen")
	machineURL := q.Get("url")
	delete(q, "url")
	pq := url.Values{}
	for _, k := range []string{"cert", "key", "ttl", "poll", "tree", "platform"} {
		if v, ok := q[k]; ok {
			pq[k] = v
			delete(q, k)
		}
	}
	s := "pull://" + listen
	if len(pq) > 0 {
		s += "?" + pq.Encode()
	}
	return s, machineURL
}

// Name is "elastic:" and the provider's name.
func (e *Executor) Name() string { return "elastic:" + e.prov.Name() }

// Pull is the pull executor the machines' workers join.
func (e *Executor) Pull() *pullexec.Executor { return e.pull }

// Driver is the autoscaler.
func (e *Executor) Driver() *autoscale.Driver { return e.drv }

// Demand feeds the autoscaler.
func (e *Executor) Demand(d executor.Demand) { e.drv.Demand(d) }

// MayGrow is true until the budget is spent: the autoscaler starts the
// builders the waiting jobs need (an on-demand one for a job preempted
// too often), so slots that refuse them now do not end the run.
func (e *Executor) MayGrow() bool { return !e.drv.BudgetSpent() }

// Capacity is the slots of the workers connected now.
func (e *Executor) Capacity() int { return e.pull.Capacity() }

// Acquire waits for a worker's slot; once the budget is spent it returns
// ErrBudget (wrapped), which stops the run with the rest of it open.
func (e *Executor) Acquire(ctx context.Context) (executor.Slot, error) {
	if e.drv.BudgetSpent() {
		return nil, ErrBudget
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-actx.Done():
				return
			case <-t.C:
				if e.drv.BudgetSpent() {
					cancel()
					return
				}
			}
		}
	}()
	s, err := e.pull.Acquire(actx)
	if e.drv.BudgetSpent() && ctx.Err() == nil {
		if s != nil {
			s.Release()
		}
		return nil, ErrBudget
	}
	if err != nil {
		return nil, err
	}
	w := &slot{Slot: s, e: e, worker: workerOf(s.Name())}
	e.mu.Lock()
	if e.held[w.worker] == nil {
		e.held[w.worker] = map[*slot]bool{}
	}
	e.held[w.worker][w] = true
	e.mu.Unlock()
	if cs, ok := s.(executor.CoreSlot); ok {
		return &coreSlot{w, cs}, nil
	}
	return w, nil
}

// retire ends the session of idle worker name (autoscale.Pool.Retire):
// when the pull server refuses because the scheduler holds a slot of it
// without a job (parked, refusing the ready jobs: an idle spot builder
// while a job waits for an on-demand one), those slots are withdrawn
// (they take no job any more) and the session is ended.
func (e *Executor) retire(name string) bool {
	if e.pull.Retire(name) {
		return true
	}
	e.mu.Lock()
	for s := range e.held[name] {
		if s.running {
			e.mu.Unlock()
			return false
		}
	}
	if len(e.held[name]) == 0 {
		e.mu.Unlock()
		return false // a lease of it is active
	}
	e.withdrawn[name] = true
	e.mu.Unlock()
	for _, w := range e.pull.Workers() {
		if w.Name == "pull:"+name && w.Busy {
			e.mu.Lock()
			delete(e.withdrawn, name)
			e.mu.Unlock()
			return false
		}
	}
	e.pull.Gone(name, "retired: idle, its slot withdrawn from the scheduler")
	return true
}

// Owns and CleanStale are the pull executor's.
func (e *Executor) Owns(worker string) bool { return e.pull.Owns(worker) }

// CleanStale is the pull executor's (its leases were fenced).
func (e *Executor) CleanStale(ctx context.Context, jobs []executor.StaleJob) ([]executor.Cleaned, error) {
	return e.pull.CleanStale(ctx, jobs)
}

// Close stops every machine (also when the run was cancelled), then the
// pull server and the provider.
func (e *Executor) Close() error {
	e.once.Do(func() {
		e.cancel()
		err := <-e.done
		e.writeStatus(true) // committed by the pull server's Close
		e.err = errors.Join(err, e.pull.Close(), e.prov.Close())
	})
	return e.err
}

// workerOf is the worker name of a slot name: pull:NAME or pull:NAME/k.
func workerOf(slotName string) string {
	n := strings.TrimPrefix(slotName, "pull:")
	if i := strings.LastIndexByte(n, '/'); i >= 0 {
		n = n[:i]
	}
	return n
}

// lost counts a job lost on a spot builder and reports how many jobs now
// need an on-demand one.
func (e *Executor) lost(pkgname string) {
	e.mu.Lock()
	e.preempts[pkgname]++
	n := e.needOnDemand()
	e.mu.Unlock()
	e.drv.SetNeedOnDemand(n)
}

func (e *Executor) finished(pkgname string) {
	e.mu.Lock()
	delete(e.preempts, pkgname)
	n := e.needOnDemand()
	e.mu.Unlock()
	e.drv.SetNeedOnDemand(n)
}

func (e *Executor) needOnDemand() int {
	if !e.pol.Spot {
		return 0
	}
	n := 0
	for _, c := range e.preempts {
		if c >= e.pol.PreemptLimit {
			n++
		}
	}
	return n
}

// slot is a pull slot that refuses, on a spot machine, the jobs lost
// there PreemptLimit times, and every job once its worker drains or was
// retired while the scheduler held it; it tells the autoscaler about
// every job.
type slot struct {
	executor.Slot
	e       *Executor
	worker  string
	running bool // e.mu
	gone    bool // given back (e.mu)
}

// Accepts is the worker's own rule and the on-demand rule.
func (s *slot) Accepts(pkgpath, pkgname string) bool {
	s.e.mu.Lock()
	closed := s.e.withdrawn[s.worker] || s.e.draining[s.worker]
	s.e.mu.Unlock()
	if closed {
		return false
	}
	if a, ok := s.Slot.(executor.Accepter); ok && !a.Accepts(pkgpath, pkgname) {
		return false
	}
	if !s.e.pol.Spot || !s.e.drv.IsSpot(s.worker) {
		return true
	}
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	return s.e.preempts[pkgname] < s.e.pol.PreemptLimit
}

// Closed reports whether the slot's worker was retired while the
// scheduler held the slot, or is gone (executor.Closer).
func (s *slot) Closed() bool {
	s.e.mu.Lock()
	w := s.e.withdrawn[s.worker]
	s.e.mu.Unlock()
	if c, ok := s.Slot.(executor.Closer); ok && c.Closed() {
		return true
	}
	return w
}

// forget takes the slot out of the held ones (e.mu held).
func (s *slot) forget() {
	s.gone = true
	if h := s.e.held[s.worker]; h != nil {
		delete(h, s)
		if len(h) == 0 {
			delete(s.e.held, s.worker)
		}
	}
}

// Release gives the slot back unused.
func (s *slot) Release() {
	s.e.mu.Lock()
	s.forget()
	s.e.mu.Unlock()
	s.Slot.Release()
}

// Run runs the job on the worker; a job lost with a spot machine counts
// toward the on-demand rule, a finished one toward the mean build time.
// On a slot withdrawn from the scheduler (its worker was retired) it
// runs nothing: the job is lost to the retired worker and requeued.
func (s *slot) Run(ctx context.Context, j executor.Job) (*executor.Outcome, error) {
	s.e.mu.Lock()
	if s.e.withdrawn[s.worker] {
		s.forget()
		s.e.mu.Unlock()
		s.Slot.Release()
		return nil, fmt.Errorf("%w: %s was retired (idle) before %s could start on it", executor.ErrLost, s.Name(), j.PkgName)
	}
	s.running = true
	s.e.mu.Unlock()
	defer func() {
		s.e.mu.Lock()
		s.running = false
		s.forget()
		s.e.mu.Unlock()
	}()
	spot := s.e.drv.IsSpot(s.worker)
	start := time.Now()
	out, err := s.Slot.Run(ctx, j)
	switch {
	case err == nil && out != nil && out.Result != nil:
		s.e.drv.JobDone(time.Since(start))
		s.e.finished(j.PkgName)
	case errors.Is(err, executor.ErrLost) && spot && ctx.Err() == nil:
		s.e.lost(j.PkgName)
	}
	return out, err
}

type coreSlot struct {
	*slot
	cs executor.CoreSlot
}

func (s *coreSlot) Cores() int     { return s.cs.Cores() }
func (s *coreSlot) FreeCores() int { return s.cs.FreeCores() }
func (s *coreSlot) Grow(n int) int { return s.cs.Grow(n) }
func (s *coreSlot) Release()       { s.slot.Release() }
func (s *coreSlot) Name() string   { return s.slot.Name() }

// pool adapts the pull executor (and the slots the scheduler holds) to
// autoscale.Pool.
type pool struct{ e *Executor }

func (p pool) Mint(ctx context.Context, name string, labels map[string]string) (string, error) {
	return p.e.pull.MintToken(ctx, name, labels, true)
}

func (p pool) Revoke(ctx context.Context, name string) error {
	err := p.e.pull.RevokeToken(ctx, name)
	if errors.Is(err, pull.ErrNoToken) {
		return nil
	}
	return err
}

func (p pool) Workers() []autoscale.Worker {
	ws := p.e.pull.Workers()
	out := make([]autoscale.Worker, 0, len(ws))
	for _, w := range ws {
		out = append(out, autoscale.Worker{Name: strings.TrimPrefix(w.Name, "pull:"), Busy: w.Busy, IdleSince: w.IdleSince, Connected: w.Connected})
	}
	return out
}

func (p pool) Retire(name string) bool { return p.e.retire(name) }

func (p pool) Drain(name string) {
	p.e.mu.Lock()
	p.e.draining[name] = true
	p.e.mu.Unlock()
}

func (p pool) Gone(name, why string) { p.e.pull.Gone(name, why) }

// lostOnSpot matches the crash detail of a job whose spot worker was lost
// (executor.CrashError of a pull slot of a spot machine the driver named).
var lostOnSpot = regexp.MustCompile(`pull:el-[0-9a-f]+-spot[0-9]+(/[0-9]+)?: worker lost: `)

// LostOnSpot counts, for every package still open or in processing in
// the database at dbPath, the jobs of it lost with a spot machine in
// earlier runs (its "lost" events, "crash" in older pkgsched, naming a
// spot worker).
func LostOnSpot(ctx context.Context, dbPath string) (map[string]int, error) {
	d, err := db.OpenReadOnly(ctx, dbPath)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	rows, err := d.QueryContext(ctx, `SELECT p.pkgname, e.detail FROM events e JOIN packages p ON p.id = e.pkg_id
		JOIN build_state s ON s.pkg_id = e.pkg_id
		WHERE e.event IN ('crash', 'lost') AND s.state IN ('open', 'in_processing') AND e.detail LIKE '%-spot%worker lost%'`)
	if err != nil {
		return nil, fmt.Errorf("jobs lost on spot machines: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var pkg, detail string
		if err := rows.Scan(&pkg, &detail); err != nil {
			return nil, fmt.Errorf("jobs lost on spot machines: %w", err)
		}
		if lostOnSpot.MatchString(detail) {
			out[pkg]++
		}
	}
	return out, rows.Err()
}
