// Package sshexec is the executor that runs pkgrun on other machines over
// SSH: one executor per host, with a number of slots, one SSH connection
// per host and one session per job.
//
// At connect the host key is checked against a known_hosts file (unknown
// or changed keys are refused), and one session writes the run's
// settings, with the host's own pkgsrc and work root put over them, to a
// file on the host that every job's pkgrun gets as --job FILE, counts the
// host's cores (nproc, unless Host.Cores declares them) and runs
// `pkgrun version --json` (lib/version). A host without pkgrun at
// Host.Pkgrun, or whose pkgrun speaks another job protocol
// (job.ProtocolVersion), is taken out at once with an error naming the
// host and both versions: Acquire returns it (lib/executor/multi then
// drops the host) instead of retrying. A job is a session running
//
//	echo pkgsched-pid $$; exec env PKGSCHED_TAG=<tag> <pkgrun> --job FILE
//
// with the presolve record on stdin; sshd makes the command a process
// group leader, so the pid it prints first names the build's process
// group. (The real command is a small wrapper, see jobScript: it also
// keeps a watchdog that kills the group when the scheduler's heartbeat on
// stdin stops for the progress deadline, so a builder cut off from its
// scheduler does not go on building what is run elsewhere.) What the
// session returns (exit status or signal, stdout, the
// tail of stderr) is read by lib/executor/protocol.
//
// When the job's context ends, the group gets SIGTERM, then SIGKILL after
// a grace period, through another session, and Run returns only once the
// job's session ended. A connection that does not answer keep-alive
// requests for the progress deadline, or that breaks, is lost: every job
// on it returns an error wrapping executor.ErrLost, after Run tried to
// reach the host again (for up to the progress deadline) to kill the
// job's group. When the host cannot be reached, Run waits for the
// builder's watchdog to have killed it, and the group is killed again when
// the host is next connected to, before it gets another job. A host that
// cannot be connected to is retried with exponential back-off (a circuit
// breaker): Acquire hands out none of its slots meanwhile; after GiveUp
// failures in a row Acquire returns an error wrapping executor.ErrLost.
//
// Slots implement executor.Accepter (the host's "no way" list,
// Host.Never) and executor.CoreSlot: each host has one executor.CorePool
// of its cores times Config.Oversubscribe, a slot holds one core from
// Acquire on and Grow adds more, so the MAKE_JOBS of the jobs on a host
// never add up to more than that.
//
// CleanStale (after a scheduler was killed) kills the process groups of
// this host's stale jobs that still carry the run's tag, then removes
// their job directories in the host's work root that were made since the
// jobs started.
//
// pkgrun builds in a Linux namespace sandbox and needs root on the
// builder, so the SSH user is usually root there, or pkgrun is a wrapper
// that gains root; sshd must allow Slots+2 sessions per connection
// (MaxSessions, default 10).
package sshexec

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/noway"
	"github.com/pkgbulk/pkgbulk/lib/executor/protocol"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store/sftpstore"
	"github.com/pkgbulk/pkgbulk/lib/version"
)

// TagVar is the environment variable that marks the scheduler's builders
// (the same as lib/executor/local's).
const TagVar = "PKGSCHED_TAG"

// Host is one builder machine.
type Host struct {
	// Name names the slots, <Name>/<n> (default "ssh:<host>").
	Name string
	User string
	Host string // host name or address
	Port int    // 0 means 22
	// Slots is how many jobs run there at once (at least 1).
	Slots int
	// Pkgrun is pkgrun's path on the host (default "pkgrun", from the
	// login's PATH).
	Pkgrun string
	// Pkgsrc and WorkRoot, when set, replace the run's settings on this
	// host.
	Pkgsrc   string
	WorkRoot string
	// Labels describe the host (e.g. "big", "x86_64"); recorded only.
	Labels []string
	// Never is the host's "no way" list: packages its slots refuse
	// (executor.Accepter).
	Never noway.List
	// Cores is the host's cores for MAKE_JOBS accounting; 0 means ask
	// the host (nproc) at connect and count at least Slots.
	Cores int
	// Oversubscribe, when set, replaces Config.Oversubscribe for this
	// host (lib/executor/execopen applies it).
	Oversubscribe float64
	// Deadline, when set, replaces Config.Deadline for this host.
	Deadline time.Duration
}

// Config configures an ssh executor.
type Config struct {
	Host     Host
	Settings job.Settings
	// IdentityFile is the private key to log in with; empty means the
	// ssh-agent, then ~/.ssh's default keys.
	IdentityFile string
	// KnownHosts must list the host's key (default ~/.ssh/known_hosts).
	KnownHosts string
	// Tag is put into every builder's environment as PKGSCHED_TAG.
	Tag string
	// ConnectTimeout bounds connecting and the handshake (default 15s).
	ConnectTimeout time.Duration
	// Grace is how long a cancelled pkgrun has between SIGTERM and
	// SIGKILL (default 10s).
	Grace time.Duration
	// KeepAlive is how often the connection is probed (default 2s), and
	// Deadline how long it may go without an answer before it and its
	// jobs are lost (default 15s).
	KeepAlive time.Duration
	Deadline  time.Duration
	// BackoffMin and BackoffMax bound the wait before connecting to a
	// failing host again (default 1s and 1m); GiveUp is the number of
	// failed connects in a row after which Acquire fails (default 10,
	// negative: never).
	BackoffMin time.Duration
	BackoffMax time.Duration
	GiveUp     int
	// Oversubscribe lets the cores granted on the host add up to Cores
	// times this (below 1: 1).
	Oversubscribe float64
	// Log gets a line per connect failure and lost connection (nil: none).
	Log io.Writer
}

// Executor runs pkgrun on one host over SSH.
type Executor struct {
	cfg      Config
	name     string
	addr     string
	doc      []byte // the settings document
	docPath  string // where it is on the host
	workRoot string // the host's work root ("" : pkgrun's default)
	auth     []ssh.AuthMethod
	release  func()
	hostKey  ssh.HostKeyCallback
	algos    []string

	free   chan int
	closed chan struct{}
	once   sync.Once

	mu         sync.Mutex
	conn       *conn     // nil when not connected
	failures   int       // connects failed in a row
	retryAt    time.Time // no connect before
	lastErr    error
	orphans    []orphan             // builders of lost jobs not known to be dead
	retired    *executor.Retirement // slots taken out for lack of disk space
	connecting chan struct{}        // closed when the connect in progress ends
	fatal      error                // the host is taken out (incompatible pkgrun)
	cores      *executor.CorePool
	remote     version.Info // the host's pkgrun, once connected
}

var (
	_ executor.Executor = (*Executor)(nil)
	_ executor.Cleaner  = (*Executor)(nil)
)

// orphan is the builder of a lost job that could not be killed: its
// process group, and its job directory's package and start.
type orphan struct {
	pid   int
	pkg   string
	start time.Time
}

// conn is one SSH connection and its liveness.
type conn struct {
	client *ssh.Client
	dead   chan struct{} // closed when the connection is lost
	once   sync.Once
	why    error
}

func (c *conn) kill(why error) {
	c.once.Do(func() {
		c.why = why
		close(c.dead)
		c.client.Close()
	})
}

// New checks the configuration; it connects on the first Acquire.
func New(cfg Config) (*Executor, error) {
	h := cfg.Host
	if h.Host == "" {
		return nil, errors.New("ssh executor: no host")
	}
	if h.Slots < 1 {
		return nil, fmt.Errorf("ssh executor %s: %d slots; need at least 1", h.Host, h.Slots)
	}
	if h.User == "" {
		return nil, fmt.Errorf("ssh executor %s: no user (ssh://user@host)", h.Host)
	}
	if h.Name == "" {
		h.Name = "ssh:" + h.Host
		if h.Port != 0 && h.Port != 22 {
			h.Name += ":" + strconv.Itoa(h.Port)
		}
	}
	if h.Pkgrun == "" {
		h.Pkgrun = "pkgrun"
	}
	if h.Cores < 0 {
		return nil, fmt.Errorf("ssh executor %s: %d cores; need at least 1 (or 0: ask the host)", h.Name, h.Cores)
	}
	cfg.Host = h
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if h.Deadline > 0 {
		cfg.Deadline = h.Deadline
	}
	def(&cfg.ConnectTimeout, 15*time.Second)
	def(&cfg.Grace, 10*time.Second)
	def(&cfg.KeepAlive, 2*time.Second)
	def(&cfg.Deadline, 15*time.Second)
	def(&cfg.BackoffMin, time.Second)
	def(&cfg.BackoffMax, time.Minute)
	if cfg.GiveUp == 0 {
		cfg.GiveUp = 10
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	s := cfg.Settings
	if h.Pkgsrc != "" {
		s.Pkgsrc = h.Pkgsrc
	}
	if h.WorkRoot != "" {
		s.WorkRoot = h.WorkRoot
	}
	doc, err := protocol.SettingsDocument(s)
	if err != nil {
		return nil, fmt.Errorf("ssh executor %s: %w", h.Name, err)
	}
	sum := sha256.Sum256([]byte(cfg.Tag + "\x00" + h.Name))
	known := cfg.KnownHosts
	if known == "" {
		home, _ := os.UserHomeDir()
		known = home + "/.ssh/known_hosts"
	}
	sc := sftpstore.Config{User: h.User, Host: h.Host, Port: h.Port}
	hk, algos, err := sftpstore.HostKeyChecker(known, sc)
	if err != nil {
		return nil, fmt.Errorf("ssh executor %s: %w", h.Name, err)
	}
	home, _ := os.UserHomeDir()
	auth, release, err := sftpstore.Auth(sftpstore.AuthOptions{IdentityFile: cfg.IdentityFile, AgentSocket: os.Getenv("SSH_AUTH_SOCK"), Home: home})
	if err != nil {
		return nil, fmt.Errorf("ssh executor %s: %w", h.Name, err)
	}
	port := h.Port
	if port == 0 {
		port = 22
	}
	e := &Executor{
		cfg: cfg, name: h.Name, addr: net.JoinHostPort(h.Host, strconv.Itoa(port)),
		doc: doc, docPath: "/tmp/pkgsched-" + hex.EncodeToString(sum[:8]) + ".json", workRoot: s.WorkRoot,
		auth: auth, release: release, hostKey: hk, algos: algos,
		free: make(chan int, h.Slots), closed: make(chan struct{}), retired: executor.NewRetirement(h.Slots),
	}
	if h.Cores > 0 {
		e.cores = executor.NewCorePool(h.Cores, cfg.Oversubscribe)
	}
	for i := 1; i <= h.Slots; i++ {
		e.free <- i
	}
	return e, nil
}

// Name is the host's worker prefix, e.g. "ssh:host1".
func (e *Executor) Name() string { return e.name }

// Capacity is the number of slots not retired for lack of disk space.
func (e *Executor) Capacity() int { return e.retired.Live() }

// Owns reports whether worker is one of this host's slots.
func (e *Executor) Owns(worker string) bool { return strings.HasPrefix(worker, e.name+"/") }

// Acquire waits for a free slot and a live connection to the host.
func (e *Executor) Acquire(ctx context.Context) (executor.Slot, error) {
	var n int
	select {
	case n = <-e.free:
	case <-e.retired.Gone():
		return nil, fmt.Errorf("%s: %w", e.name, e.retired.Err())
	case <-e.closed:
		return nil, fmt.Errorf("%s: executor closed", e.name)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c, err := e.connected(ctx)
	if err != nil {
		e.free <- n
		return nil, err
	}
	pool := e.corePool()
	if err := pool.Take(ctx, 1); err != nil {
		e.free <- n
		return nil, err
	}
	return &slot{e: e, n: n, c: c, CoreHold: executor.NewCoreHold(pool, 1)}, nil
}

// corePool is the host's core pool (known once connected).
func (e *Executor) corePool() *executor.CorePool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cores
}

// Remote is the host's pkgrun version, known once connected.
func (e *Executor) Remote() version.Info {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.remote
}

// connected returns the live connection, connecting (after the back-off
// of earlier failures) when there is none.
func (e *Executor) connected(ctx context.Context) (*conn, error) {
	for {
		e.mu.Lock()
		if c := e.conn; c != nil {
			select {
			case <-c.dead:
				e.conn = nil
			default:
				e.mu.Unlock()
				return c, nil
			}
		}
		if e.fatal != nil {
			err := e.fatal
			e.mu.Unlock()
			return nil, err
		}
		if e.cfg.GiveUp > 0 && e.failures >= e.cfg.GiveUp {
			err := e.lastErr
			e.mu.Unlock()
			return nil, fmt.Errorf("%s: gave up after %d failed connects: %w (last: %v)", e.name, e.failures, executor.ErrLost, err)
		}
		if ch := e.connecting; ch != nil {
			e.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		wait := time.Until(e.retryAt)
		ch := make(chan struct{})
		e.connecting = ch
		e.mu.Unlock()
		c, err := e.connectAfter(ctx, wait)
		e.mu.Lock()
		e.connecting = nil
		close(ch)
		if err == nil {
			e.conn, e.failures = c, 0
			e.mu.Unlock()
			return c, nil
		}
		if ctx.Err() != nil {
			e.mu.Unlock()
			return nil, ctx.Err()
		}
		if errors.Is(err, version.ErrIncompatible) {
			// Retrying cannot help: every job would crash there.
			e.fatal = fmt.Errorf("%s taken out: %w", e.name, err)
			fmt.Fprintf(e.cfg.Log, "pkgsched: %v\n", e.fatal)
			e.mu.Unlock()
			return nil, e.fatal
		}
		e.failures++
		e.lastErr = err
		back := e.cfg.BackoffMin << min(e.failures-1, 20)
		if back > e.cfg.BackoffMax || back <= 0 {
			back = e.cfg.BackoffMax
		}
		e.retryAt = time.Now().Add(back)
		fmt.Fprintf(e.cfg.Log, "pkgsched: %s: %v; trying again in %s\n", e.name, err, back)
		e.mu.Unlock()
	}
}

func (e *Executor) connectAfter(ctx context.Context, wait time.Duration) (*conn, error) {
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-e.closed:
			return nil, errors.New("executor closed")
		}
	}
	return e.connect(ctx)
}

// connect dials the host, writes the settings document, counts the cores,
// checks pkgrun's version and kills the groups of jobs lost earlier.
func (e *Executor) connect(ctx context.Context) (*conn, error) {
	cctx, cancel := context.WithTimeout(ctx, e.cfg.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(cctx, "tcp", e.addr)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	stop := context.AfterFunc(cctx, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, e.addr, &ssh.ClientConfig{
		User: e.cfg.Host.User, Auth: e.auth, HostKeyCallback: e.hostKey, HostKeyAlgorithms: e.algos,
		Timeout: e.cfg.ConnectTimeout,
	})
	if !stop() {
		if err == nil {
			sc.Close()
		}
		return nil, fmt.Errorf("connect: %w", cctx.Err())
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("ssh handshake: %w", err)
	}
	c := &conn{client: ssh.NewClient(sc, chans, reqs), dead: make(chan struct{})}
	go func() {
		err := c.client.Wait()
		c.kill(fmt.Errorf("connection closed: %v", err))
	}()
	go e.keepAlive(c)
	fail := func(err error) (*conn, error) {
		c.kill(err)
		return nil, err
	}
	if err := e.setUp(cctx, c); err != nil {
		return fail(err)
	}
	e.mu.Lock()
	orphans := e.orphans
	e.mu.Unlock()
	if len(orphans) > 0 {
		// Kill them, then remove their job directories (before this
		// host gets another job).
		pids := make([]int, len(orphans))
		var clean strings.Builder
		for i, o := range orphans {
			pids[i] = o.pid
			fmt.Fprintf(&clean, "%s\n", cleanScript(e.workRoot, o.pkg, o.start.Add(-clockSlack).Unix()))
		}
		if err := e.command(cctx, c, killScript(e.cfg.Tag, "KILL", pids), nil, nil); err != nil {
			return fail(fmt.Errorf("kill the builders of lost jobs: %w", err))
		}
		if !e.cfg.Settings.KeepWorkdir {
			_ = e.command(cctx, c, clean.String(), nil, nil)
		}
		e.mu.Lock()
		e.orphans = e.orphans[len(orphans):]
		e.mu.Unlock()
	}
	return c, nil
}

// setUpScript writes the settings document (stdin) to doc, prints the
// host's cores and runs pkgrun version --json: one session for all of
// it (each session runs the login shell's start-up files).
func setUpScript(doc, pkgrun string) string {
	return fmt.Sprintf(`umask 077 && cat > %[1]s.tmp && mv -f %[1]s.tmp %[1]s || { echo "pkgsched: cannot write %[1]s" >&2; exit 125; }
printf 'cores %%s\n' "$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 0)"
umask 022
exec %[2]s`, quote(doc), version.Command(pkgrun))
}

// setUp runs setUpScript on c and checks its answer.
func (e *Executor) setUp(ctx context.Context, c *conn) error {
	sess, err := c.client.NewSession()
	if err != nil {
		return fmt.Errorf("open a session: %w", err)
	}
	defer sess.Close()
	var stdout bytes.Buffer
	stderr := protocol.TailBuffer{Max: 1024}
	sess.Stdin = bytes.NewReader(e.doc)
	sess.Stdout, sess.Stderr = &stdout, &stderr
	if err := sess.Start(setUpScript(e.docPath, e.cfg.Host.Pkgrun)); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		return fmt.Errorf("set up: %w", ctx.Err())
	case <-c.dead:
		return fmt.Errorf("set up: %w", c.why)
	}
	code := 0
	var ee *ssh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Signal() == "":
		code = ee.ExitStatus()
	default:
		return fmt.Errorf("set up: %w", err)
	}
	if code == 125 && strings.HasPrefix(stderr.String(), "pkgsched: ") {
		return fmt.Errorf("write the settings: %s", strings.TrimSpace(stderr.String()))
	}
	first, rest, _ := strings.Cut(stdout.String(), "\n")
	nproc := 0
	if v, ok := strings.CutPrefix(first, "cores "); ok {
		nproc, _ = strconv.Atoi(strings.TrimSpace(v))
	}
	info, err := version.Remote(e.name, e.cfg.Host.Pkgrun, code, []byte(rest), stderr.String())
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.remote = info
	if e.cores == nil {
		if nproc < 1 {
			fmt.Fprintf(e.cfg.Log, "pkgsched: %s: could not count the host's cores (%q); counting 1 (set cores=N)\n", e.name, first)
		}
		// As lib/executor/local: without cores=, slots=N still runs N
		// jobs at once.
		e.cores = executor.NewCorePool(max(nproc, e.cfg.Host.Slots), e.cfg.Oversubscribe)
	}
	return nil
}

// keepAlive probes c; one probe unanswered for the deadline loses it.
func (e *Executor) keepAlive(c *conn) {
	t := time.NewTicker(e.cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-c.dead:
			return
		case <-t.C:
		}
		answered := make(chan struct{})
		go func() {
			c.client.SendRequest("keepalive@openssh.com", true, nil)
			close(answered)
		}()
		select {
		case <-answered:
		case <-c.dead:
			return
		case <-time.After(e.cfg.Deadline):
			fmt.Fprintf(e.cfg.Log, "pkgsched: %s: no answer for %s: connection lost\n", e.name, e.cfg.Deadline)
			c.kill(fmt.Errorf("no answer for %s", e.cfg.Deadline))
			return
		}
	}
}

// command runs cmd in a new session of c with stdin and waits; a non-zero
// exit is an error carrying the stderr tail.
func (e *Executor) command(ctx context.Context, c *conn, cmd string, stdin []byte, stdout io.Writer) error {
	s, err := c.client.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	stderr := protocol.TailBuffer{Max: 1024}
	s.Stdin = bytes.NewReader(stdin)
	s.Stdout = stdout
	s.Stderr = &stderr
	if err := s.Start(cmd); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.dead:
		return c.why
	}
	if err != nil && stderr.String() != "" {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return err
}

// Close closes the connection and removes the settings file on the host
// (when it is reachable).
func (e *Executor) Close() error {
	e.once.Do(func() {
		close(e.closed)
		e.mu.Lock()
		c := e.conn
		e.conn = nil
		e.mu.Unlock()
		if c != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = e.command(ctx, c, "rm -f "+quote(e.docPath), nil, nil)
			cancel()
			c.kill(errors.New("executor closed"))
		}
		e.release()
	})
	return nil
}

func (e *Executor) retire(err error) { e.retired.Retire(err) }

// quote quotes s for a POSIX shell.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// killScript sends sig to the process groups pids whose leader still
// carries the tag (a reused pid is left alone); after SIGKILL it waits
// for each leader to die.
func killScript(tag, sig string, pids []int) string {
	var b strings.Builder
	want := TagVar + "=" + tag
	for _, p := range pids {
		fmt.Fprintf(&b, "if tr '\\0' '\\n' < /proc/%d/environ 2>/dev/null | grep -qxF -- %s; then kill -%s -%d 2>/dev/null; ", p, quote(want), sig, p)
		if sig == "KILL" {
			// Wait (up to 5s) until the leader is dead (gone or a
			// zombie), so that nothing of it runs once we return.
			fmt.Fprintf(&b, "i=0; while [ $i -lt 100 ] && [ -e /proc/%d ] && ! grep -q ') Z' /proc/%d/stat 2>/dev/null; do sleep 0.05; i=$((i+1)); done; ", p, p)
		}
		b.WriteString("fi; ")
	}
	b.WriteString("true")
	return b.String()
}

// jobScript is the session command of one job: it prints its pid (the
// leader of the job's process group), reads the n-byte record from stdin
// into a file, runs pkgrun on it, and kills the whole group (itself
// included) when stdin ends or no heartbeat byte came for watchdog: the
// scheduler went away or cannot be reached, so the job may be run
// elsewhere and must not go on here. SIGTERM is passed on to pkgrun, and
// the wrapper waits for it; a pkgrun killed by a signal kills the
// wrapper with the same signal, so the session reports it as such.
func jobScript(tag, pkgrun, doc string, n int, watchdog time.Duration) string {
	secs := int(watchdog.Seconds() + 0.999)
	script := fmt.Sprintf(`echo pkgsched-pid $$
exec 3<&0
rec=$(mktemp "${TMPDIR:-/tmp}/pkgsched-record.XXXXXX") || exit 2
head -c %d <&3 > "$rec" || { rm -f "$rec"; exit 2; }
%s --job %s --input "$rec" </dev/null &
p=$!
( while :; do b=$(timeout %d dd bs=1 count=1 2>/dev/null | od -An -c); [ -n "$b" ] || break; done; rm -f "$rec"; kill -KILL -$$ ) <&3 >/dev/null 2>&1 &
w=$!
exec 3<&-
trap 'kill -TERM $p 2>/dev/null' TERM
while :; do wait $p; s=$?; kill -0 $p 2>/dev/null || break; done
kill $w 2>/dev/null
rm -f "$rec"
if [ $s -gt 128 ] && [ $s -lt 160 ]; then trap - TERM; kill -$((s-128)) $$; fi
exit $s`, n, quote(pkgrun), quote(doc), secs)
	return "exec env " + quote(TagVar+"="+tag) + " sh -c " + quote(script)
}

// cleanScript removes the job directories of pkg in root made since
// since (unix seconds), printing each path removed or kept.
func cleanScript(root, pkg string, since int64) string {
	return fmt.Sprintf(`root=%s; [ -n "$root" ] || root="${TMPDIR:-/tmp}/pkgrun"; for d in "$root"/%s.*; do `+
		`[ -d "$d" ] && [ ! -L "$d" ] || continue; case "${d##*/}" in %s.*.*) continue;; esac; `+
		`[ "$(stat -c %%Y "$d")" -ge %d ] || continue; if rm -rf -- "$d"; then echo "removed $d"; else echo "kept $d"; fi; done; true`,
		quote(root), quote(pkg), quote(pkg), since)
}
