package autoscale

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/provider"
)

// Pool is the side of the builders that the pull server sees: tokens for
// the machines the driver starts, the workers connected now, and their
// retirement (lib/executor/elastic adapts lib/executor/pullexec to it).
type Pool interface {
	// Mint makes a one-session registration token for worker name.
	Mint(ctx context.Context, name string, labels map[string]string) (string, error)
	// Revoke ends the token of name and its session, if any.
	Revoke(ctx context.Context, name string) error
	// Workers are the workers with an open session.
	Workers() []Worker
	// Retire ends the session of an idle worker and reports whether it
	// did (false: it holds a job). A slot of it that the scheduler holds
	// without a job (parked: it refuses the ready jobs) is withdrawn, so
	// that an idle builder can always be stopped.
	Retire(name string) bool
	// Drain makes the worker name take no new job; the one it runs
	// finishes.
	Drain(name string)
	// Gone ends the session of a worker whose machine is stopped or
	// dead, and requeues its job at once.
	Gone(name, why string)
}

// Worker is a connected worker as the pool reports it.
type Worker struct {
	Name      string // the token's name (no "pull:")
	Busy      bool
	IdleSince time.Time // when its last job ended or it registered
	Connected time.Time // when it registered (zero: unknown)
}

// DriverConfig configures a Driver.
type DriverConfig struct {
	Policy   Policy
	Provider provider.Provider
	Pool     Pool
	Worker   provider.WorkerConfig // what every machine's worker is told
	Run      string                // provider.TagRun of every machine: the database
	// Prefix names the workers PREFIX-od1, PREFIX-spot2... (on-demand or
	// spot, then a count; default "el-" and six random hex digits, new
	// for every driver).
	Prefix string
	// Tick is how often the driver looks at the workers without a
	// demand change (default 1s).
	Tick time.Duration
	// JoinTimeout is how long a machine may take to register its worker
	// before it is stopped as broken (default 10 × Boot, at least 2m).
	JoinTimeout time.Duration
	// ListEvery is how often the provider's machines are listed to find
	// the ones the provider lost (spot reclaimed; default 15s).
	ListEvery time.Duration
	Log       io.Writer
	Now       func() time.Time
}

type machine struct {
	id, name  string
	spot      bool
	started   time.Time
	joined    bool
	busy      bool
	idleSince time.Time
	draining  bool // Pool.Drain was called: it takes no new job
	// stopped is when Stop returned for it; it bills until the provider
	// no longer lists it.
	stopped time.Time
}

// Driver starts and stops machines through a provider so that the pool
// has the builders the policy wants. Demand, JobDone and SetNeedOnDemand
// feed it (from any goroutine, never blocking); Run applies the policy
// until its context ends, then stops every machine it started.
type Driver struct {
	cfg DriverConfig
	pol Policy

	mu       sync.Mutex
	demand   executor.Demand
	needOD   int
	doneN    int64
	doneSum  time.Duration
	spent    bool
	machines map[string]*machine // by worker name
	stopping map[string]*machine // by id: stopped, still listed
	closed   time.Duration       // billed time of machines gone
	boot     *BootEstimate
	started  int // machines started in all
	kick     chan struct{}

	seq          int
	failures     int
	backoffUntil time.Time
	lastList     time.Time
	// Spot capacity ran short (provider.ErrNoCapacity) spotFails times
	// in a row: no spot start before spotUntil.
	spotFails int
	spotUntil time.Time
}

// NewDriver checks cfg and makes a driver; Run starts it.
func NewDriver(cfg DriverConfig) (*Driver, error) {
	if err := cfg.Policy.Check(); err != nil {
		return nil, err
	}
	if cfg.Provider == nil || cfg.Pool == nil {
		return nil, errors.New("autoscale: no provider or no pool")
	}
	if cfg.Run == "" {
		return nil, errors.New("autoscale: no run tag")
	}
	if cfg.Prefix == "" {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		cfg.Prefix = "el-" + hex.EncodeToString(b[:])
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	pol := cfg.Policy.Defaults()
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = max(10*pol.Boot, 2*time.Minute)
	}
	if cfg.ListEvery <= 0 {
		cfg.ListEvery = 15 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Driver{cfg: cfg, pol: pol, machines: map[string]*machine{}, stopping: map[string]*machine{},
		boot: NewBootEstimate(pol.Boot), kick: make(chan struct{}, 1)}, nil
}

// Demand is the scheduler's demand signal.
func (d *Driver) Demand(dm executor.Demand) {
	d.mu.Lock()
	d.demand = dm
	d.mu.Unlock()
	d.poke()
}

// JobDone counts a finished job's build time toward the mean.
func (d *Driver) JobDone(took time.Duration) {
	d.mu.Lock()
	d.doneN++
	d.doneSum += took
	d.mu.Unlock()
}

// SetNeedOnDemand is how many ready jobs only an on-demand builder may take.
func (d *Driver) SetNeedOnDemand(n int) {
	d.mu.Lock()
	changed := d.needOD != n
	d.needOD = n
	d.mu.Unlock()
	if changed {
		d.poke()
	}
}

func (d *Driver) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// BudgetSpent reports whether the budget of builder time is spent: no
// builder starts and no job should be handed out any more.
func (d *Driver) BudgetSpent() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.spent
}

// IsSpot reports whether worker name runs on a spot machine the driver
// started (false for workers it does not know).
func (d *Driver) IsSpot(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.machines[name]
	return m != nil && m.spot
}

// Stats is what the driver did so far.
type Stats struct {
	Live     int           // machines billed now: starting, running and stopping
	Stopping int           // of those, stopped but still listed by the provider
	Started  int           // machines started in all
	Billed   time.Duration // builder time from each start until it is gone (or now)
	// Boot is the boot time estimate (BootEstimate): the policy's Boot
	// until a machine joined, then the running mean of the joins.
	Boot  time.Duration
	Joins int // joins measured
}

// Stats reports the machines and the builder time billed.
func (d *Driver) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.Now()
	s := Stats{Live: len(d.machines) + len(d.stopping), Stopping: len(d.stopping), Started: d.started, Billed: d.closed,
		Boot: d.boot.Value(), Joins: d.boot.N()}
	for _, m := range d.machines {
		s.Billed += now.Sub(m.started)
	}
	for _, m := range d.stopping {
		s.Billed += now.Sub(m.started)
	}
	return s
}

// Reap stops every machine of this run that the provider lists and the
// driver did not start: the ones a master that died left running. It
// returns them.
func (d *Driver) Reap(ctx context.Context) ([]provider.Instance, error) {
	list, err := d.cfg.Provider.List(ctx, map[string]string{provider.TagRun: d.cfg.Run})
	if err != nil {
		return nil, fmt.Errorf("autoscale: list machines: %w", err)
	}
	d.mu.Lock()
	var orphans []provider.Instance
	for _, in := range list {
		if m := d.machines[in.Name]; (m == nil || m.id != in.ID) && d.stopping[in.ID] == nil {
			orphans = append(orphans, in)
		}
	}
	d.mu.Unlock()
	if len(orphans) == 0 {
		return nil, nil
	}
	err = d.cfg.Provider.Stop(ctx, provider.IDs(orphans))
	for _, in := range orphans {
		if in.Name == "" {
			continue
		}
		if err == nil {
			d.cfg.Pool.Gone(in.Name, "machine of an earlier master stopped")
		}
		d.cfg.Pool.Revoke(ctx, in.Name)
	}
	if err != nil {
		return orphans, fmt.Errorf("autoscale: stop %d machines left by an earlier run: %w", len(orphans), err)
	}
	// Until they are gone they bill, and count toward Max.
	now := d.cfg.Now()
	d.mu.Lock()
	for _, in := range orphans {
		d.stopping[in.ID] = &machine{id: in.ID, name: in.Name, spot: in.Spot, started: now, stopped: now}
	}
	d.mu.Unlock()
	d.settle(ctx)
	fmt.Fprintf(d.cfg.Log, "autoscale: stopped %d machines an earlier master of this run left (%s)\n", len(orphans), names(orphans))
	return orphans, nil
}

func names(is []provider.Instance) string {
	s := ""
	for i, in := range is {
		if i > 0 {
			s += ", "
		}
		if i == 5 {
			return s + fmt.Sprintf("%d more", len(is)-5)
		}
		s += in.ID
	}
	return s
}

// Run reaps what an earlier master left, applies the policy whenever the
// demand changes and every Tick until ctx ends, then stops every machine
// it started (with a context of its own, so that a cancelled run still
// stops them) and returns.
func (d *Driver) Run(ctx context.Context) error {
	if _, err := d.Reap(ctx); err != nil {
		fmt.Fprintf(d.cfg.Log, "%v\n", err)
	}
	t := time.NewTicker(d.cfg.Tick)
	defer t.Stop()
	for {
		d.Step(ctx)
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			return d.StopAll(sctx)
		case <-d.kick:
		case <-t.C:
		}
	}
}

// StopAll stops every machine the driver started, and those of its run
// that the provider still lists.
func (d *Driver) StopAll(ctx context.Context) error {
	d.mu.Lock()
	var all []*machine
	for _, m := range d.machines {
		all = append(all, m)
	}
	d.mu.Unlock()
	var errs []error
	if len(all) > 0 {
		errs = append(errs, d.stop(ctx, all, "the run ends"))
	}
	if _, err := d.Reap(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// stop stops machines ms, ends their workers' sessions (their jobs are
// requeued at once: the machines are dead), revokes their tokens and
// forgets them. When the provider cannot stop them, the tokens are still
// revoked but the jobs wait for their leases to expire (a machine that
// may still run must not have its job built twice at once).
func (d *Driver) stop(ctx context.Context, ms []*machine, why string) error {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.id
	}
	err := d.cfg.Provider.Stop(ctx, ids)
	for _, m := range ms {
		if err == nil {
			d.cfg.Pool.Gone(m.name, "machine stopped: "+why)
		}
		if rerr := d.cfg.Pool.Revoke(ctx, m.name); rerr != nil {
			fmt.Fprintf(d.cfg.Log, "autoscale: revoke the token of %s: %v\n", m.name, rerr)
		}
	}
	if err != nil {
		return fmt.Errorf("autoscale: stop %v: %w", ids, err)
	}
	now := d.cfg.Now()
	d.mu.Lock()
	for _, m := range ms {
		if d.machines[m.name] == m {
			delete(d.machines, m.name)
			m.stopped = now
			d.stopping[m.id] = m
		}
	}
	d.mu.Unlock()
	sort.Strings(ids)
	fmt.Fprintf(d.cfg.Log, "autoscale: stopped %v: %s\n", ids, why)
	d.settle(ctx)
	return nil
}

// settle forgets the stopped machines that the provider no longer lists:
// they are gone and bill no more. Until then they count toward Max.
func (d *Driver) settle(ctx context.Context) {
	d.mu.Lock()
	n := len(d.stopping)
	d.mu.Unlock()
	if n == 0 {
		return
	}
	there, ok := d.listed(ctx)
	if !ok {
		return
	}
	now := d.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, m := range d.stopping {
		if !there[id] {
			delete(d.stopping, id)
			d.closed += now.Sub(m.started)
		}
	}
}

// Step looks at the workers once and starts and stops machines as the
// policy says.
func (d *Driver) Step(ctx context.Context) {
	now := d.cfg.Now()
	connected := map[string]Worker{}
	for _, w := range d.cfg.Pool.Workers() {
		connected[w.Name] = w
	}
	var gone, late []*machine
	d.mu.Lock()
	for _, m := range d.machines {
		w, ok := connected[m.name]
		switch {
		case ok:
			if !m.joined {
				at := w.Connected
				if at.IsZero() || at.Before(m.started) {
					at = now
				}
				took := at.Sub(m.started)
				est := d.boot.Add(took)
				fmt.Fprintf(d.cfg.Log, "autoscale: %s joined %s after its start; boot estimate now %s\n",
					m.name, took.Round(100*time.Millisecond), est.Round(100*time.Millisecond))
			}
			m.joined, m.busy = true, w.Busy
			m.idleSince = w.IdleSince
			if m.idleSince.IsZero() {
				m.idleSince = now
			}
		case m.joined:
			gone = append(gone, m) // its worker left: it died, was taken back or retired
		case now.Sub(m.started) > d.cfg.JoinTimeout:
			late = append(late, m)
		}
	}
	d.mu.Unlock()
	if len(gone) > 0 {
		d.stop(ctx, gone, "their workers left")
	}
	if len(late) > 0 {
		d.stop(ctx, late, fmt.Sprintf("not joined within %s", d.cfg.JoinTimeout))
	}
	if now.Sub(d.lastList) >= d.cfg.ListEvery {
		d.lastList = now
		d.dropLost(ctx)
	}
	d.settle(ctx)

	d.mu.Lock()
	pol := d.pol
	pol.Boot = d.boot.Value()
	in := Input{Now: now, Demand: d.demand, NeedOnDemand: d.needOD, Spent: d.closed, Stopping: len(d.stopping)}
	for _, m := range d.stopping {
		in.Spent += now.Sub(m.started)
	}
	if d.doneN > 0 {
		in.MeanJob = d.doneSum / time.Duration(d.doneN)
	}
	byName := map[string]*machine{}
	for _, m := range d.machines {
		byName[m.name] = m
		in.Spent += now.Sub(m.started)
		b := Builder{Name: m.name, Spot: m.spot, Started: m.started, Up: m.joined, IdleSince: m.idleSince, Draining: m.draining}
		if m.busy {
			b.Busy = 1
		}
		in.Builders = append(in.Builders, b)
	}
	sort.Slice(in.Builders, func(i, j int) bool { return in.Builders[i].Name < in.Builders[j].Name })
	dec := pol.Decide(in)
	if dec.BudgetSpent && !d.spent {
		fmt.Fprintf(d.cfg.Log, "autoscale: %s\n", dec.Why)
	}
	d.spent = dec.BudgetSpent
	d.mu.Unlock()

	for _, name := range dec.Drain {
		if m := byName[name]; m != nil && !m.draining {
			d.cfg.Pool.Drain(name)
			d.mu.Lock()
			m.draining = true
			d.mu.Unlock()
			fmt.Fprintf(d.cfg.Log, "autoscale: %s takes no new job and stops once its job ended: %s\n", name, dec.Why)
		}
	}
	var stop []*machine
	for _, name := range dec.Stop {
		m := byName[name]
		if m == nil {
			continue
		}
		// A joined worker is retired first, so that no job is handed to
		// a machine being stopped; one that holds a job stays.
		if m.joined && !d.cfg.Pool.Retire(m.name) {
			continue
		}
		stop = append(stop, m)
	}
	if len(stop) > 0 {
		d.stop(ctx, stop, dec.Why)
	}
	if now.Before(d.backoffUntil) {
		return
	}
	// Max is a hard limit on the machines billed at once: a stop the
	// policy counted on may not have happened (the worker holds a job
	// now) or not finished (the machine is still shutting down). The
	// starts wait for the room; on-demand ones (for the jobs that only
	// they take) first.
	if dec.StartSpot > 0 && now.Before(d.spotUntil) {
		// No spot capacity lately: on-demand builders instead (the
		// budget and Max hold them as they would the spot ones), or
		// none until spot is tried again.
		if !d.pol.SpotWait {
			dec.StartOnDemand += dec.StartSpot
			dec.Why += fmt.Sprintf("; on-demand in place of spot until %s", d.spotUntil.Format(time.TimeOnly))
		}
		dec.StartSpot = 0
	}
	d.mu.Lock()
	room := max(d.pol.Max-len(d.machines)-len(d.stopping), 0)
	d.mu.Unlock()
	dec.StartOnDemand = min(dec.StartOnDemand, room)
	dec.StartSpot = min(dec.StartSpot, room-dec.StartOnDemand)
	if dec.StartOnDemand > 0 {
		d.start(ctx, dec.StartOnDemand, false, dec.Why)
	}
	if dec.StartSpot > 0 {
		d.start(ctx, dec.StartSpot, true, dec.Why)
	}
}

// listed is the set of the run's machines the provider lists now; false
// (logged) when it could not list them.
func (d *Driver) listed(ctx context.Context) (map[string]bool, bool) {
	list, err := d.cfg.Provider.List(ctx, map[string]string{provider.TagRun: d.cfg.Run})
	if err != nil {
		fmt.Fprintf(d.cfg.Log, "autoscale: list machines: %v\n", err)
		return nil, false
	}
	there := make(map[string]bool, len(list))
	for _, in := range list {
		there[in.ID] = true
	}
	return there, true
}

// dropLost forgets the machines the provider no longer lists (a cloud
// took a spot instance back, a VM died): they bill no more; their
// workers' leases end as lost and the jobs are requeued.
func (d *Driver) dropLost(ctx context.Context) {
	there, ok := d.listed(ctx)
	if !ok {
		return
	}
	d.mu.Lock()
	var lost []*machine
	for _, m := range d.machines {
		if !there[m.id] {
			lost = append(lost, m)
		}
	}
	d.mu.Unlock()
	if len(lost) > 0 {
		d.stop(ctx, lost, "the provider lost them")
	}
}

// start starts n machines.
func (d *Driver) start(ctx context.Context, n int, spot bool, why string) {
	kind := "on-demand"
	if spot {
		kind = "spot"
	}
	labels := map[string]string{"capacity": kind}
	req := provider.StartRequest{Config: d.cfg.Worker, Spot: spot, Tags: map[string]string{provider.TagRun: d.cfg.Run}}
	req.Config.Labels = map[string]string{}
	for k, v := range d.cfg.Worker.Labels {
		req.Config.Labels[k] = v
	}
	for k, v := range labels {
		req.Config.Labels[k] = v
	}
	short := "od"
	if spot {
		short = "spot"
	}
	for range n {
		d.seq++
		name := fmt.Sprintf("%s-%s%d", d.cfg.Prefix, short, d.seq)
		tok, err := d.cfg.Pool.Mint(ctx, name, labels)
		if err != nil {
			fmt.Fprintf(d.cfg.Log, "autoscale: token for %s: %v\n", name, err)
			d.backoff()
			break
		}
		req.Workers = append(req.Workers, provider.Worker{Name: name, Token: tok})
	}
	if len(req.Workers) == 0 {
		return
	}
	now := d.cfg.Now()
	// The machines bill from now, started or not: count the attempt.
	got, err := d.cfg.Provider.Start(ctx, req)
	d.mu.Lock()
	for _, in := range got {
		d.machines[in.Name] = &machine{id: in.ID, name: in.Name, spot: spot, started: now}
		d.started++
	}
	d.mu.Unlock()
	started := map[string]bool{}
	for _, in := range got {
		started[in.Name] = true
	}
	for _, w := range req.Workers {
		if !started[w.Name] {
			d.cfg.Pool.Revoke(ctx, w.Name)
		}
	}
	if len(got) > 0 {
		fmt.Fprintf(d.cfg.Log, "autoscale: started %d %s builders on %s: %s\n", len(got), kind, d.cfg.Provider.Name(), why)
	}
	if spot && errors.Is(err, provider.ErrNoCapacity) {
		d.noSpot(ctx, len(req.Workers)-len(got), err, why)
		return
	}
	if err != nil {
		fmt.Fprintf(d.cfg.Log, "autoscale: start %d %s builders on %s: %v\n", len(req.Workers)-len(got), kind, d.cfg.Provider.Name(), err)
		d.backoff()
		return
	}
	d.failures = 0
	if spot && d.spotFails > 0 {
		d.spotFails = 0
		fmt.Fprintf(d.cfg.Log, "autoscale: spot capacity on %s again\n", d.cfg.Provider.Name())
	}
}

// noSpot handles a spot start that failed for lack of capacity: no spot
// start for SpotRetry (doubled for every shortage in a row, up to 12
// times), and the n builders that did not start start on-demand now
// unless SpotWait. One log line says so.
func (d *Driver) noSpot(ctx context.Context, n int, err error, why string) {
	d.spotFails++
	wait := min(d.pol.SpotRetry<<min(d.spotFails-1, 4), 12*d.pol.SpotRetry)
	d.spotUntil = d.cfg.Now().Add(wait)
	if d.pol.SpotWait {
		fmt.Fprintf(d.cfg.Log, "autoscale: no spot capacity on %s (%v): %d builders wait; spot is tried again in %s (spot-fallback=wait)\n",
			d.cfg.Provider.Name(), err, n, wait)
		return
	}
	fmt.Fprintf(d.cfg.Log, "autoscale: no spot capacity on %s (%v): starting %d on-demand builders instead; spot is tried again in %s (spot-fallback=on-demand)\n",
		d.cfg.Provider.Name(), err, n, wait)
	d.start(ctx, n, false, why+"; on-demand in place of spot")
}

// backoff waits longer after every failure to start (1s, 2s... 1m).
func (d *Driver) backoff() {
	d.failures++
	wait := min(time.Second<<min(d.failures-1, 6), time.Minute)
	d.backoffUntil = d.cfg.Now().Add(wait)
}
