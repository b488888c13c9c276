// Package schedcmd is pkgsched's command line: the kong grammar and the
// Run methods of its subcommands, kept out of cmd/pkgsched so the binary's
// main stays a few lines and tests can drive the commands in-process.
package schedcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"
	"github.com/klauspost/compress/zstd"

	"github.com/pkgbulk/pkgbulk/lib/autoscale"
	"github.com/pkgbulk/pkgbulk/lib/build"
	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor/execopen"
	"github.com/pkgbulk/pkgbulk/lib/executor/local"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/pull"
	"github.com/pkgbulk/pkgbulk/lib/sched"
	"github.com/pkgbulk/pkgbulk/lib/speedup"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
)

// Description is pkgsched's --help text.
const Description = `Drive a bulk build from the build database that pkgdag wrote.

pkgsched run hands every selected package to pkgrun once all its
dependencies are built, longest remaining path first (on durations learned
from earlier runs, PBULK_WEIGHT when there is no history), a user priority
list on top. Every state change is committed to the database before it is
acted on, so a killed pkgsched resumes with 'pkgsched run' again: nothing
finished is lost or built again, what was running is started again.

States are pbulk's (open, in_processing, done, failed, prefailed,
indirect-failed, indirect-prefailed) plus skew and timeout, which fail
dependents like failed; up-to-date packages are done with detail
'up-to-date'. A crashed pkgrun (exit 2, a signal, garbage on stdout) is
never a failed build: the package is queued again, and when one package's
builder crashed --max-crashes times in a run, or --crash-streak builder
runs in a row crashed, the run stops (exit 2, naming the package and the
builder's stderr) with the package still queued. A pkgrun out of disk
space (exit 3) is not a crash either: the package is queued again, that
builder is not used again in this run, and once no builder is left the run
stops (exit 2). A job lost with its worker (a host down, a link cut) is
queued again and counted apart from crashes, up to --max-lost times per
package in a run. Fix the cause and run pkgsched again to resume.
'pkgsched run --retry failed' rebuilds failed packages.

On builders that declare their cores (local:N?cores=C, ssh hosts'
cores=), each job's MAKE_JOBS is granted by --make-jobs-policy (path: more
cores to the jobs on the remaining critical path, from each package's
speed-up in the history; off: none) so that the grants on a builder add
up to at most its cores times --oversubscribe. A builder that refuses a
package (an ssh host's never= list) never gets it; when no builder takes
the ready packages and nothing runs, the run stops (exit 2) naming them.

One pkgsched run per database: it holds <db>.lock for the whole run, and a
second run (or pkgdag build replacing the database) exits 2 naming its pid
and host. pkgsched status and report only read the database and work on a
read-only one.

Builders run on -j local slots, or where --executor says (repeatable, all
feeding one run): local:N, ssh://user@host?slots=N (pkgrun over SSH, host
key checked; a host that stops answering loses its jobs, which are queued
again), ssh:HOSTSFILE. See "Builders on other machines" in the operator
guide.

pkgrun's settings go to every builder as a job document (--job and the
flags that override it); the "Store access" flags (--s3-endpoint,
--ssh-identity, ...) travel in it as store_access. S3 keys never do: pkgrun
inherits AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from pkgsched's
environment.

Exit codes:
  0  every selected package is done (built or up to date)
  1  some package failed, was prefailed, skewed, timed out or depends on one
  2  bad usage or input (missing database, other schema version, unknown
     package in the priority list), a database in use by another run, an
     I/O error, builders that crash or are out of disk space, or an
     interrupted run: run it again to resume`

// CLI is pkgsched's grammar.
type CLI struct {
	Run      RunCmd      `cmd:"" help:"Build the selected packages of a build database."`
	Status   StatusCmd   `cmd:"" help:"Show counts per state, running jobs and the time left."`
	Simulate SimulateCmd `cmd:"" help:"Simulate a build on a virtual clock: makespan, utilisation, lower bound."`
	Report   ReportCmd   `cmd:"" help:"Write pbulk's report files (meta/report, report.txt, report.html) from the database."`
	Dist     DistCmd     `cmd:"" name:"distfiles" help:"List the distfiles the build needs and which the store lacks (for pre-fetching)."`
	Serve    ServeCmd    `cmd:"" help:"Serve a live status page and its JSON API, read-only, from the database."`
	Token    TokenCmd    `cmd:"" help:"Add, revoke and list the registration tokens of pull workers."`
}

// RunCmd is pkgsched run.
type RunCmd struct {
	DB            string  `name:"db" required:"" type:"existingfile" placeholder:"FILE" help:"Build database (pkgdag's output)."`
	Jobs          int     `short:"j" default:"0" placeholder:"N" help:"Parallel builds (pkgrun processes); 0 means one per CPU."`
	Priority      string  `placeholder:"FILE" type:"existingfile" help:"Priority list: pkgpaths or PKGNAMEs, one a line; they and their dependencies go first."`
	Order         string  `enum:"path,pbulk" default:"path" help:"Ready-queue order: path (longest remaining path) or pbulk (pbulk-build's weight order)."`
	MaxCrashes    int     `default:"3" placeholder:"N" help:"Stop the run when one package's builder crashed this many times in it (the package stays queued)."`
	MaxLost       int     `default:"10" placeholder:"N" help:"Stop the run when one package's job was lost with its worker (a host down, a link cut) this many times in it; counted apart from crashes (the package stays queued)."`
	CoresPolicy   string  `name:"make-jobs-policy" enum:"path,off" default:"path" help:"How MAKE_JOBS is granted on builders that declare their cores: path (more cores to jobs on the remaining critical path, from each package's speed-up in the history; one to the others) or off (one core per job, nothing granted: pkgrun's settings decide)."`
	Oversubscribe float64 `default:"1" placeholder:"F" help:"Let the MAKE_JOBS granted on a builder add up to its declared cores times F (at least 1)."`
	CrashStreak   int     `default:"10" placeholder:"N" help:"Stop when this many builder runs in a row crashed (broken pkgrun settings or store)."`
	NoStoreCheck  bool    `help:"Do not check that the tree and the store can be reached before the first build (for a store only the builders reach)."`
	Retry         string  `enum:",crashed,failed" default:"" help:"Reopen packages an earlier run failed: failed (every failed, skew and timeout package) or crashed (those an older pkgsched failed after builder crashes); their indirect-failed dependents are reopened too."`
	Pkgrun        string  `placeholder:"PROG" help:"pkgrun program (default: beside pkgsched, then PATH)."`
	JSON          bool    `name:"json" help:"Print the summary as JSON."`

	Executors   []string `name:"executor" sep:"none" placeholder:"SPEC" help:"Where the builders run (repeatable; all of them feed this run): local (one slot per CPU), local:N, local:N?cores=C&oversubscribe=F (N slots sharing C cores for MAKE_JOBS), ssh://user@host[:port]?slots=N&cores=C&never=PATTERN&pkgrun=PATH&pkgsrc=DIR&workroot=DIR, ssh:HOSTSFILE (one ssh:// spec a line), slurm://?partition=P&slots=N&cores=C, pull://LISTEN_ADDR:PORT?ttl=5m (volunteer pkgrun workers poll it; see pkgsched token), or elastic:KIND?max=N&boot=60s&idle=60s (pull workers on process, qemu or ec2 machines started on demand and stopped when idle; see docs/elastic-builders.md). Default: local with -j slots."`
	SSHIdentity string   `name:"executor-identity" type:"path" placeholder:"FILE" help:"SSH private key for ssh executors (default: --ssh-identity, then ssh-agent and ~/.ssh)."`
	KnownHosts  string   `name:"executor-known-hosts" type:"path" placeholder:"FILE" help:"known_hosts file listing the ssh executors' host keys (default: --known-hosts, then ~/.ssh/known_hosts)."`

	JobFile string `name:"job" placeholder:"FILE" type:"existingfile" help:"pkgrun settings as a JSON file (job.Settings); the flags below override it."`
	// pkgrun's own flags, handed to every pkgrun in the job document
	// (store access as its store_access).
	Build build.SettingsFlags `embed:""`
}

// settings merges the job document and the flags.
func (c *RunCmd) settings() (job.Settings, error) {
	var s job.Settings
	if c.JobFile != "" {
		var err error
		if s, err = job.ReadSettings(c.JobFile); err != nil {
			return s, err
		}
	}
	s = s.Override(c.Build.Settings())
	for _, e := range c.Build.Env {
		if !strings.Contains(e, "=") {
			return s, fmt.Errorf("--env %q: want KEY=VALUE", e)
		}
	}
	for _, d := range []string{s.MaxTime, s.NoOutputTime} {
		if d != "" {
			if _, err := time.ParseDuration(d); err != nil {
				return s, fmt.Errorf("bad duration %q: %w", d, err)
			}
		}
	}
	return s, nil
}

// Run builds. Stopped by SIGINT or SIGTERM, it says so and that running
// it again resumes, whatever it was doing.
func (c *RunCmd) Run(ctx context.Context, g *cli.Globals, k *kong.Context) error {
	err := c.run(ctx, g, k)
	var ie *sched.InterruptedError
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) && !errors.As(err, &ie) {
		return &sched.InterruptedError{Err: err}
	}
	return err
}

func (c *RunCmd) run(ctx context.Context, g *cli.Globals, k *kong.Context) error {
	settings, err := c.settings()
	if err != nil {
		return err
	}
	if c.Jobs != 0 && len(c.Executors) > 0 {
		return errors.New("give -j or --executor, not both (-j N is --executor local:N)")
	}
	if !(c.Oversubscribe >= 1) || math.IsInf(c.Oversubscribe, 0) {
		return fmt.Errorf("--oversubscribe %v: want a factor of at least 1", c.Oversubscribe)
	}
	jobs := c.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	abs, err := filepath.Abs(c.DB)
	if err != nil {
		return err
	}
	// One scheduler per database, for the whole run: a second one would
	// hand out every package again and kill this one's builders as
	// orphans, and pkgdag must not replace the file under us.
	lock, err := db.TryLock(abs, "pkgsched run")
	if err != nil {
		if errors.Is(err, db.ErrLocked) {
			return fmt.Errorf("%w: one pkgsched run per database; wait for it or stop it, then run again", err)
		}
		return err
	}
	defer lock.Release()
	// Opening checks the schema; a bad database stops us before any
	// builder starts.
	d, err := db.Open(ctx, abs)
	if err != nil {
		return err
	}
	defer d.Close()
	var user []bool
	if c.Priority != "" {
		gr, err := sched.LoadGraph(ctx, d)
		if err != nil {
			return err
		}
		if user, err = sched.ReadPriorityFile(gr, c.Priority); err != nil {
			return err
		}
	}
	if !c.NoStoreCheck {
		if err := preflight(ctx, settings); err != nil {
			if ctx.Err() != nil {
				// A store client may not say that it was cancelled.
				return &sched.InterruptedError{Err: ctx.Err()}
			}
			return err
		}
	}
	// Builders of a pkgsched that was killed (kill -9) carry this tag.
	if n, err := local.KillOrphans(abs); err != nil {
		fmt.Fprintf(g.Stderr, "pkgsched: looking for orphaned builders: %v\n", err)
	} else if n > 0 {
		fmt.Fprintf(g.Stderr, "pkgsched: killed %d orphaned builder processes of an earlier run\n", n)
	}
	specs := c.Executors
	if len(specs) == 0 {
		specs = []string{fmt.Sprintf("local:%d", jobs)}
	}
	ident, known := c.SSHIdentity, c.KnownHosts
	if ident == "" {
		ident = c.Build.Access.SSHIdentity
	}
	if known == "" {
		known = c.Build.Access.KnownHosts
	}
	ex, err := execopen.Open(ctx, specs, execopen.Env{Settings: settings, Tag: abs, Pkgrun: c.Pkgrun,
		SettingsFile: settingsFile(abs, g.Stderr), SSHIdentity: ident, KnownHosts: known, Log: g.Stderr,
		Oversubscribe: c.Oversubscribe})
	if err != nil {
		return err
	}
	defer ex.Close()
	opts := sched.RunOptions{Exec: ex, Order: sched.Order(c.Order), User: user, MaxCrashes: c.MaxCrashes,
		MaxLost: c.MaxLost, CrashStreak: c.CrashStreak, Retry: sched.Retry(c.Retry), Log: g.Stderr}
	if c.CoresPolicy == "path" {
		opts.Cores = &sched.CorePolicy{}
	}
	if cli.IsTerminal(g.Stderr) {
		opts.Progress = g.Stderr
	}
	sum, runErr := sched.Run(ctx, d, opts)
	if sum != nil {
		if err := printSummary(g.Stdout, sum, c.JSON); err != nil {
			return err
		}
	}
	if runErr != nil {
		return runErr
	}
	if n := sum.Failures(); n > 0 {
		return cli.Failed("%d of %d packages not built (failed, prefailed or depending on a failure); see pkgsched status or the build_state table of %s", n, total(sum.Counts), c.DB)
	}
	if n := sum.Unfinished(); n > 0 {
		return fmt.Errorf("%d packages left open", n)
	}
	return nil
}

// settingsFile names this run's pkgrun settings file: beside the
// database, so that a run killed with -9 leaves no stray file in /tmp, and
// of this run alone (<db>.pkgrun-<pid>.json). Files of earlier runs are
// removed: the caller holds the database's lock, so their runs are over.
func settingsFile(db string, stderr io.Writer) string {
	old, _ := filepath.Glob(globEscape(db) + ".pkgrun-*.json")
	old = append(old, db+".pkgrun.json") // before runs had their own
	for _, f := range old {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "pkgsched: remove the settings file of an earlier run: %v\n", err)
		}
	}
	return fmt.Sprintf("%s.pkgrun-%d.json", db, os.Getpid())
}

// globEscape quotes the metacharacters of filepath.Match in s.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func total(m map[sched.State]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func printSummary(w io.Writer, s *sched.Summary, asJSON bool) error {
	if asJSON {
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	fmt.Fprintf(w, "packages: %d\n", total(s.Counts))
	printCounts(w, s.Counts, s.UpToDate)
	fmt.Fprintf(w, "builder runs: %d (%d crashed, %d lost with their worker, %d out of disk space; %d given more than one core)\n", s.Jobs, s.Crashes, s.Lost, s.NoSpace, s.MultiCore)
	fmt.Fprintf(w, "elapsed: %s on %d slots, utilisation %.1f%%\n", dur(s.ElapsedMS), s.Capacity, 100*s.Utilisation)
	fmt.Fprintf(w, "idle slot time: %s with packages ready (dispatch), %s with nothing ready (dependency tail)\n", dur(s.IdleReadyMS), dur(s.IdleStarvedMS))
	return nil
}

func printCounts(w io.Writer, counts map[sched.State]int, upToDate int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, st := range sched.States {
		if n := counts[st]; n > 0 {
			extra := ""
			if st == sched.Done && upToDate > 0 {
				extra = fmt.Sprintf("\t(%d up to date)", upToDate)
			}
			fmt.Fprintf(tw, "  %s\t%d%s\n", st, n, extra)
		}
	}
	tw.Flush()
}

func dur(ms int64) string {
	return (time.Duration(ms) * time.Millisecond).Round(time.Second).String()
}

// StatusCmd is pkgsched status.
type StatusCmd struct {
	DB   string `name:"db" required:"" type:"existingfile" placeholder:"FILE" help:"Build database."`
	JSON bool   `name:"json" help:"Print the status as JSON."`
}

// Run prints the status.
func (c *StatusCmd) Run(ctx context.Context, g *cli.Globals) error {
	d, err := db.OpenReadOnly(ctx, c.DB)
	if err != nil {
		return err
	}
	defer d.Close()
	st, err := sched.ReadStatus(ctx, d, time.Now())
	if err != nil {
		return err
	}
	ps, err := pull.ReadStatus(ctx, d)
	if err != nil {
		return err
	}
	es, err := autoscale.ReadStatus(ctx, d)
	if err != nil {
		return err
	}
	if c.JSON {
		b, err := json.MarshalIndent(struct {
			*sched.Status
			Pull    *pull.Status      `json:"pull"`
			Elastic *autoscale.Status `json:"elastic"`
		}{st, ps, es}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(g.Stdout, "%s\n", b)
		return err
	}
	w := g.Stdout
	fmt.Fprintf(w, "%s: %d packages", c.DB, st.Total)
	if !st.Started {
		fmt.Fprint(w, " (no build started yet)")
	}
	fmt.Fprintln(w)
	printCounts(w, st.Counts, st.UpToDate)
	if len(st.Running) > 0 {
		fmt.Fprintln(w, "running:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, r := range st.Running {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t(estimate %s)\n", r.PkgName, r.Worker, dur(r.AgeMS), dur(r.EstimateMS))
		}
		tw.Flush()
	}
	if err := st.WriteFailures(w); err != nil {
		return err
	}
	if err := ps.Write(w, time.Now()); err != nil {
		return err
	}
	if err := es.Write(w, time.Now()); err != nil {
		return err
	}
	left := st.Counts[sched.Open] + st.Counts[sched.InProcessing]
	if left > 0 && (st.Scheduler == nil || st.Scheduler.Alive || !st.Scheduler.Known) {
		fmt.Fprintf(w, "left: %d packages, about %s on %d slots\n", left, dur(st.ETAMS), max(st.Slots, 1))
	}
	return st.WriteLiveness(w, c.DB)
}

// SimulateCmd is pkgsched simulate.
type SimulateCmd struct {
	DB       string  `name:"db" xor:"input" type:"existingfile" placeholder:"FILE" help:"Build database to simulate."`
	Presolve string  `xor:"input" type:"existingfile" placeholder:"FILE" help:"Presolve file (pbulk-resolve or pkgdag output; .zst allowed) instead of a database."`
	Workers  []int   `short:"W" default:"8" placeholder:"N" help:"Builders (repeat or comma-separate for several simulations)."`
	Order    string  `enum:"path,pbulk,both" default:"path" help:"path (ours), pbulk (pbulk-build's order) or both."`
	History  string  `type:"existingfile" placeholder:"CSV" help:"Durations per pkgpath from a CSV with pkgpath and duration (ms) columns (bob's history format); others are estimated."`
	Generate bool    `help:"Draw durations from a lognormal distribution even when the database has history."`
	Median   int64   `default:"60000" placeholder:"MS" help:"Median of generated durations."`
	Sigma    float64 `default:"1.5" help:"Sigma of generated (lognormal) durations."`
	Cap      float64 `default:"200" help:"Cap of generated durations, as a multiple of the median."`
	Seed     uint64  `default:"1" help:"Seed of generated durations."`
	Priority string  `type:"existingfile" placeholder:"FILE" help:"Priority list, as for run."`
	JSON     bool    `name:"json" help:"Print results as JSON."`

	CoresPerBuilder int     `placeholder:"N" help:"Also simulate builders of N cores each, packing jobs by cores with MAKE_JOBS per job from the critical-path policy, against one core per job on the same cores (0: off)."`
	Fraction        float64 `name:"parallel-fraction" default:"-1" placeholder:"F" help:"Parallel share of a build without history for --cores-per-builder (default: the median fitted from --history's stage columns, else 0.5)."`

	Elastic ElasticSimFlags `embed:"" prefix:""`
}

// Run simulates.
func (c *SimulateCmd) Run(ctx context.Context, g *cli.Globals) error {
	var gr *sched.Graph
	hist := map[string]int64{}
	switch {
	case c.DB != "":
		d, err := db.OpenReadOnly(ctx, c.DB)
		if err != nil {
			return err
		}
		defer d.Close()
		if gr, err = sched.LoadGraph(ctx, d); err != nil {
			return err
		}
		if hist, err = sched.HistoryDurations(ctx, d); err != nil {
			return err
		}
	case c.Presolve != "":
		var err error
		if gr, err = readPresolve(c.Presolve); err != nil {
			return err
		}
	default:
		return errors.New("simulate: give --db or --presolve")
	}
	if c.History != "" {
		var err error
		if hist, err = sched.ReadHistoryCSVFile(c.History); err != nil {
			return err
		}
	}
	var durs []int64
	source := ""
	if len(hist) == 0 || c.Generate {
		l := sched.Lognormal{MedianMS: c.Median, Sigma: c.Sigma, Cap: c.Cap, Seed: c.Seed}
		durs = l.Generate(gr.Len())
		source = fmt.Sprintf("lognormal median %s sigma %g cap %gx seed %d", dur(c.Median), c.Sigma, c.Cap, c.Seed)
	} else {
		durs = sched.Durations(gr, hist)
		known := 0
		for _, p := range gr.Path {
			if _, ok := hist[p]; ok {
				known++
			}
		}
		source = fmt.Sprintf("history of %d of %d packages, the rest estimated", known, gr.Len())
	}
	var user []bool
	if c.Priority != "" {
		var err error
		if user, err = sched.ReadPriorityFile(gr, c.Priority); err != nil {
			return err
		}
	}
	if c.Elastic.Elastic {
		return c.Elastic.run(ctx, g, gr, durs, source, c.Workers, c.JSON)
	}
	orders := []sched.Order{sched.Order(c.Order)}
	if c.Order == "both" {
		orders = []sched.Order{sched.OrderPath, sched.OrderPbulk}
	}
	var results []*sched.SimResult
	for _, w := range c.Workers {
		for _, o := range orders {
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := sched.Simulate(gr, sched.SimOptions{Workers: w, Order: o, User: user, Dur: durs})
			if err != nil {
				return err
			}
			results = append(results, r)
		}
	}
	var cores []*sched.CoreSimResult
	if c.CoresPerBuilder > 0 {
		models, err := c.models(gr, durs)
		if err != nil {
			return err
		}
		for _, w := range c.Workers {
			for _, base := range []bool{false, true} {
				r, err := sched.SimulateCores(gr, sched.CoreSimOptions{Builders: w, Cores: c.CoresPerBuilder, Models: models, OneCorePerJob: base})
				if err != nil {
					return err
				}
				cores = append(cores, r)
			}
		}
	}
	if c.JSON {
		out := map[string]any{"durations": source, "results": results}
		if cores != nil {
			out["cores"] = cores
		}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(g.Stdout, "%s\n", b)
		return err
	}
	fmt.Fprintf(g.Stdout, "%d packages; durations: %s\n", gr.Len(), source)
	tw := tabwriter.NewWriter(g.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workers\torder\tbuilt\tmakespan\tlower bound\tcritical path\twork/W\tmakespan/LB\tutilisation\t")
	sort.SliceStable(results, func(a, b int) bool { return results[a].Workers < results[b].Workers })
	for _, r := range results {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%.4f\t%.1f%%\t\n", r.Workers, r.Order, r.Jobs, dur(r.MakespanMS),
			dur(r.LowerBoundMS), dur(r.CriticalMS), dur(r.TotalWorkMS/int64(r.Workers)), r.Ratio, 100*r.Utilisation)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if cores == nil {
		return nil
	}
	fmt.Fprintf(g.Stdout, "\nbuilders of %d cores: MAKE_JOBS per job (critical-path policy) against one core per job\n", c.CoresPerBuilder)
	tw = tabwriter.NewWriter(g.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "builders\tcores\tpolicy makespan\tone core per job\tratio\tone-core critical path\tmakespan/critical\tjobs with MAKE_JOBS>1\tutilisation\t")
	for i := 0; i+1 < len(cores); i += 2 {
		p, b := cores[i], cores[i+1]
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%.3f\t%s\t%.3f\t%d\t%.1f%%\t\n", p.Builders, p.Cores, dur(p.MakespanMS), dur(b.MakespanMS),
			float64(p.MakespanMS)/float64(max(b.MakespanMS, 1)), dur(p.CriticalMS), p.PathOverMS, p.Multi, 100*p.Utilisation)
	}
	return tw.Flush()
}

// models gives every package a speed-up model for --cores-per-builder:
// fitted from --history when its rows have the stage columns (bob's
// format), else its estimated duration with the parallel fraction.
func (c *SimulateCmd) models(gr *sched.Graph, durs []int64) ([]speedup.Model, error) {
	fitted := map[string]speedup.Model{}
	if c.History != "" {
		f, err := os.Open(c.History)
		if err != nil {
			return nil, err
		}
		h, err := speedup.ReadCSV(f, c.History)
		f.Close()
		if err == nil {
			fitted = h.Models()
		}
	}
	frac := c.Fraction
	if frac < 0 {
		frac = speedup.MedianFraction(fitted)
	}
	if frac > 1 {
		return nil, fmt.Errorf("--parallel-fraction %g: want 0 to 1", frac)
	}
	models := make([]speedup.Model, gr.Len())
	for i := range models {
		if m, ok := fitted[gr.Path[i]]; ok {
			models[i] = m
			continue
		}
		models[i] = speedup.FromFraction(durs[i], frac)
	}
	return models, nil
}

func readPresolve(path string) (*sched.Graph, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".zst") {
		zr, err := zstd.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	return sched.ParsePresolve(r, path)
}

// errEnough stops a List after its first object.
var errEnough = errors.New("enough")

// preflight checks what every pkgrun will need before any package is
// handed out: an unreachable store or a missing tree would otherwise make
// every builder crash and mark packages failed for a fault of the set-up.
func preflight(ctx context.Context, s job.Settings) error {
	if s.Pkgsrc != "" {
		if fi, err := os.Stat(s.Pkgsrc); err != nil || !fi.IsDir() {
			return fmt.Errorf("pkgsrc tree %s: not a directory", s.Pkgsrc)
		}
	}
	if s.Store == "" {
		return nil
	}
	st, err := storeopen.Open(ctx, s.Store, storeopen.AccessOptions(s.StoreAccess))
	if err != nil {
		return fmt.Errorf("package store: %w", err)
	}
	defer st.Close()
	err = st.List(ctx, "All/", func(store.Info) error { return errEnough })
	if err != nil && !errors.Is(err, errEnough) {
		return fmt.Errorf("package store %s: %w", st, err)
	}
	return nil
}
