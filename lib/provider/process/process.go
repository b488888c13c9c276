// Package process is the builder provider of a single big machine: every
// builder is a `pkgrun worker` process on the master's own machine, in its
// own process group, with its own work directory. It is the third
// provider beside qemu and EC2, and the one the autoscaler's tests start
// real workers with.
//
// A builder's record (its id, pid, process start time and tags) is kept
// as a file in Dir, so that a master started after a crash finds the
// builders the dead one left (List) and stops them (Stop). The token
// reaches the worker as a file of mode 0600 in the builder's own
// directory (mode 0700), never as an argument. Spot builders are only a
// tag here: nothing takes a process back.
package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/atomicfile"
	"github.com/pkgbulk/pkgbulk/lib/provider"
)

// Config configures a provider.
type Config struct {
	// Dir holds one directory per builder (its token, work root and
	// log) and one record file per builder; made with mode 0700.
	Dir string
	// Pkgrun is the pkgrun program (default: "pkgrun" in PATH).
	Pkgrun string
	// Args are more arguments for every `pkgrun worker` (e.g. --pkgsrc,
	// --bootstrap-kit, --cores); --work-root defaults to the builder's
	// own directory.
	Args []string
	// Env is the workers' environment (nil: a minimal one with PATH).
	Env []string
}

// Provider starts workers as local processes.
type Provider struct {
	cfg  Config
	mu   sync.Mutex
	kids map[string]*exec.Cmd // builders this provider started, by id
}

type record struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	PID     int               `json:"pid"`
	Start   uint64            `json:"start_ticks"` // /proc/PID/stat field 22: tells a reused pid apart
	Spot    bool              `json:"spot"`
	Started time.Time         `json:"started"`
	Tags    map[string]string `json:"tags"`
}

// New opens the provider on cfg.Dir.
func New(cfg Config) (*Provider, error) {
	if cfg.Dir == "" {
		return nil, errors.New("provider process: no directory")
	}
	if cfg.Pkgrun == "" {
		cfg.Pkgrun = "pkgrun"
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("provider process: %w", err)
	}
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("provider process: %w", err)
	}
	return &Provider{cfg: cfg, kids: map[string]*exec.Cmd{}}, nil
}

// Name is "process".
func (p *Provider) Name() string { return "process" }

// Start starts one `pkgrun worker` per worker of req.
func (p *Provider) Start(ctx context.Context, req provider.StartRequest) ([]provider.Instance, error) {
	if err := req.Check(); err != nil {
		return nil, fmt.Errorf("provider process: %w", err)
	}
	var out []provider.Instance
	for _, w := range req.Workers {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		in, err := p.start(req, w)
		if err != nil {
			return out, fmt.Errorf("provider process: worker %s: %w", w.Name, err)
		}
		out = append(out, in)
	}
	return out, nil
}

func (p *Provider) start(req provider.StartRequest, w provider.Worker) (provider.Instance, error) {
	id := w.Name
	dir := filepath.Join(p.cfg.Dir, id)
	if _, err := os.Stat(p.recordPath(id)); err == nil {
		return provider.Instance{}, fmt.Errorf("a builder %s exists", id)
	}
	if err := os.RemoveAll(dir); err != nil {
		return provider.Instance{}, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return provider.Instance{}, err
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(w.Token+"\n"), 0o600); err != nil {
		return provider.Instance{}, err
	}
	args := []string{"worker", "--server", req.Config.ServerURL, "--token-file", tokenFile, "--name", w.Name}
	if req.Config.Fingerprint != "" {
		args = append(args, "--fingerprint", req.Config.Fingerprint)
	}
	labels := map[string]string{}
	for k, v := range req.Config.Labels {
		labels[k] = v
	}
	for _, l := range provider.LabelArgs(labels) {
		args = append(args, "--label", l)
	}
	if !hasFlag(p.cfg.Args, "--work-root") {
		args = append(args, "--work-root", filepath.Join(dir, "work"))
		if err := os.Mkdir(filepath.Join(dir, "work"), 0o700); err != nil {
			return provider.Instance{}, err
		}
	}
	args = append(args, p.cfg.Args...)
	logf, err := os.OpenFile(filepath.Join(dir, "worker.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return provider.Instance{}, err
	}
	defer logf.Close()
	cmd := exec.Command(p.cfg.Pkgrun, args...)
	cmd.Dir = dir
	cmd.Env = p.cfg.Env
	if cmd.Env == nil {
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + os.TempDir()}
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group (and session): it outlives a master killed
	// with -9, so that a restarted master finds it (List) and stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return provider.Instance{}, err
	}
	rec := record{ID: id, Name: w.Name, PID: cmd.Process.Pid, Start: startTicks(cmd.Process.Pid), Spot: req.Spot,
		Started: time.Now().UTC().Truncate(time.Millisecond), Tags: req.MachineTags(w)}
	b, _ := json.Marshal(rec)
	err = atomicfile.WriteFile(p.recordPath(id), func(w io.Writer) error { _, err := w.Write(b); return err })
	if err != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		return provider.Instance{}, err
	}
	p.mu.Lock()
	p.kids[id] = cmd
	p.mu.Unlock()
	go cmd.Wait() // reap it when it exits; the record tells it is gone
	return rec.instance(), nil
}

func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

func (p *Provider) recordPath(id string) string { return filepath.Join(p.cfg.Dir, id+".json") }

func (r record) instance() provider.Instance {
	st := provider.Running
	if !r.alive() {
		st = provider.Terminated
	}
	return provider.Instance{ID: r.ID, Name: r.Name, State: st, Spot: r.Spot, Started: r.Started, Tags: r.Tags}
}

// alive is true while the record's process runs (and is not a zombie).
func (r record) alive() bool {
	if r.PID <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(r.PID) + "/stat")
	if err != nil {
		return false
	}
	state, start, ok := parseStat(string(b))
	return ok && state != "Z" && state != "X" && start == r.Start
}

// parseStat reads the state and start time (field 22) of /proc/PID/stat.
func parseStat(s string) (state string, start uint64, ok bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return "", 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return f[0], v, true
}

func startTicks(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	_, v, _ := parseStat(string(b))
	return v
}

func (p *Provider) records() ([]record, error) {
	ents, err := os.ReadDir(p.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("provider process: %w", err)
	}
	var out []record
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(p.cfg.Dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("provider process: %w", err)
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil || r.ID+".json" != e.Name() {
			return nil, fmt.Errorf("provider process: %s: not a builder record", filepath.Join(p.cfg.Dir, e.Name()))
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// List returns the running builders that carry every tag of tags.
func (p *Provider) List(ctx context.Context, tags map[string]string) ([]provider.Instance, error) {
	recs, err := p.records()
	if err != nil {
		return nil, err
	}
	var out []provider.Instance
	for _, r := range recs {
		in := r.instance()
		if in.State == provider.Terminated {
			// It died (killed, crashed, or left): it bills nothing;
			// its directory and record go, as a cloud forgets a
			// terminated instance.
			p.forget(r.ID)
			continue
		}
		if provider.Matches(r.Tags, tags) {
			out = append(out, in)
		}
	}
	return out, nil
}

// forget removes a dead builder's directory and record.
func (p *Provider) forget(id string) error {
	var errs []error
	if err := os.RemoveAll(filepath.Join(p.cfg.Dir, id)); err != nil {
		errs = append(errs, fmt.Errorf("provider process: %w", err))
	}
	if err := os.Remove(p.recordPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("provider process: %w", err))
	}
	p.mu.Lock()
	delete(p.kids, id)
	p.mu.Unlock()
	return errors.Join(errs...)
}

// Stop kills the builders' process groups (SIGTERM, then SIGKILL after
// a few seconds) and removes their directories.
func (p *Provider) Stop(ctx context.Context, ids []string) error {
	recs, err := p.records()
	if err != nil {
		return err
	}
	byID := map[string]record{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	var errs []error
	for _, id := range ids {
		r, ok := byID[id]
		if !ok {
			continue
		}
		if r.alive() {
			// Its group: the worker and a build it may have left.
			syscall.Kill(-r.PID, syscall.SIGTERM)
			deadline := time.Now().Add(5 * time.Second)
			for r.alive() && time.Now().Before(deadline) && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
			}
			if r.alive() {
				syscall.Kill(-r.PID, syscall.SIGKILL)
				for i := 0; r.alive() && i < 250; i++ {
					time.Sleep(20 * time.Millisecond)
				}
			}
			if r.alive() {
				errs = append(errs, fmt.Errorf("provider process: builder %s (pid %d) does not die", id, r.PID))
				continue
			}
			// The rest of its group goes too (the pgid cannot be reused
			// while a member lives).
			syscall.Kill(-r.PID, syscall.SIGKILL)
		}
		if err := p.forget(id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close does nothing: the builders keep running until Stop.
func (p *Provider) Close() error { return nil }
