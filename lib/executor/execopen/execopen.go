// Package execopen turns executor specs into executors, one scheme each:
//
//	local             one local slot per CPU      lib/executor/local
//	local:8           8 local slots
//	local:8?cores=4&oversubscribe=1.5
//	                  8 local slots sharing 4 cores (the MAKE_JOBS the
//	                  scheduler grants here add up to at most 4 × 1.5)
//	ssh://user@host[:port]?slots=4&cores=8&oversubscribe=1.5&never=www/firefox*&never=rust-[0-9]*&pkgrun=/usr/pkg/bin/pkgrun&pkgsrc=DIR&workroot=DIR&label=big&name=NAME&deadline=15s
//	                  one host                    lib/executor/sshexec
//	                  (deadline: how long the host may not answer
//	                  before its jobs are lost and requeued; cores:
//	                  the host's cores for MAKE_JOBS, default nproc
//	                  there, at least slots; never, repeatable: a pkgpath glob or a
//	                  package pattern the host must never get, see
//	                  lib/executor/noway; '+' is a plus, not a space)
//	ssh:FILE          a hosts file: one ssh:// spec a line (# comments)
//	slurm://?partition=P&slots=N&cores=C&pkgrun=PATH&conf=FILE
//	                  srun steps in a Slurm cluster lib/executor/slurmexec
//	                  (cores: the most CPUs a job may ask for)
//	pull://LISTEN_ADDR?cert=F&key=F&ttl=5m&poll=30s&tree=REV&platform=OPSYS/ARCH
//	                  volunteer workers that poll  lib/executor/pullexec
//	elastic:KIND?max=4&min=0&boot=60s&idle=60s&budget=10h&spot=true&preempt=2&listen=ADDR&url=URL
//	                  pull workers on machines the lib/executor/elastic
//	                  autoscaler starts and stops (KIND: a provider of
//	                  lib/provider/provideropen: process, qemu, ec2)
//
// Several specs (pkgsched run --executor, repeated) are joined by
// lib/executor/multi. This is the one place where executors are wired.
package execopen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/elastic"
	"github.com/pkgbulk/pkgbulk/lib/executor/local"
	"github.com/pkgbulk/pkgbulk/lib/executor/multi"
	"github.com/pkgbulk/pkgbulk/lib/executor/noway"
	"github.com/pkgbulk/pkgbulk/lib/executor/pullexec"
	"github.com/pkgbulk/pkgbulk/lib/executor/slurmexec"
	"github.com/pkgbulk/pkgbulk/lib/executor/sshexec"
	"github.com/pkgbulk/pkgbulk/lib/job"
)

// Env is what every executor of a run shares.
type Env struct {
	Settings job.Settings // pkgrun's settings for every job
	Tag      string       // marks the run's builders (the database's path)
	Pkgrun   string       // local pkgrun ("" : beside this program, then PATH)
	// SettingsFile is where the local executor writes its settings
	// document ("" : a temporary file).
	SettingsFile string
	// SSHIdentity and KnownHosts are for ssh hosts (default: ssh-agent
	// and ~/.ssh).
	SSHIdentity string
	KnownHosts  string
	// Deadline is how long an ssh connection may go unanswered before
	// its jobs are lost (0: sshexec's default).
	Deadline time.Duration
	Log      io.Writer
	// Oversubscribe lets the MAKE_JOBS granted on one builder add up to
	// its declared cores times this factor (at least 1; 0 means 1). Every
	// executor whose builders declare cores applies it; a spec's own
	// oversubscribe= setting overrides it for that executor.
	Oversubscribe float64
}

// Open opens the executors specs name, joined into one when there are
// several. No spec means "local".
func Open(ctx context.Context, specs []string, env Env) (executor.Executor, error) {
	if len(specs) == 0 {
		specs = []string{"local"}
	}
	var all []executor.Executor
	closeAll := func() {
		for _, e := range all {
			e.Close()
		}
	}
	names := map[string]bool{}
	locals := 0
	for _, spec := range specs {
		es, err := open(spec, env, &locals)
		if err != nil {
			closeAll()
			return nil, err
		}
		for _, e := range es {
			if n, ok := e.(interface{ Name() string }); ok {
				if names[n.Name()] {
					e.Close()
					closeAll()
					return nil, fmt.Errorf("executor %s: %s is given twice", spec, n.Name())
				}
				names[n.Name()] = true
			}
			all = append(all, e)
		}
	}
	if len(all) == 1 {
		return all[0], nil
	}
	return multi.New(all...)
}

func open(spec string, env Env, locals *int) ([]executor.Executor, error) {
	scheme, rest, _ := strings.Cut(spec, ":")
	if strings.HasPrefix(spec, "local?") {
		scheme = "local"
	}
	switch scheme {
	case "local":
		ls, err := ParseLocal(spec, env.Oversubscribe)
		if err != nil {
			return nil, err
		}
		*locals++
		name := "local"
		file := env.SettingsFile
		if *locals > 1 {
			name = fmt.Sprintf("local%d", *locals)
			if file != "" {
				file = strings.TrimSuffix(file, ".json") + "-" + name + ".json"
			}
		}
		e, err := local.New(local.Config{Pkgrun: env.Pkgrun, Slots: ls.Slots, Cores: ls.Cores, Oversubscribe: ls.Oversubscribe,
			Settings: env.Settings, Tag: env.Tag, SettingsFile: file, Name: name})
		if err != nil {
			return nil, err
		}
		return []executor.Executor{e}, nil
	case "ssh":
		if strings.HasPrefix(rest, "//") {
			h, err := ParseHost(spec)
			if err != nil {
				return nil, err
			}
			e, err := sshexec.New(sshConfig(h, env))
			if err != nil {
				return nil, err
			}
			return []executor.Executor{e}, nil
		}
		return openHostsFile(rest, env)
	case "slurm":
		e, err := slurmexec.Open(spec, env.Settings, env.Tag, env.Pkgrun)
		if err != nil {
			return nil, err
		}
		return []executor.Executor{e}, nil
	case "pull":
		// Tag is the database's path: leases live there, the
		// self-signed certificate beside it.
		e, err := pullexec.Open(context.Background(), spec, env.Settings, env.Tag, env.Log)
		if err != nil {
			return nil, err
		}
		return []executor.Executor{e}, nil
	case "elastic":
		// The pull executor's database, and the machines' run tag.
		e, err := elastic.Open(context.Background(), spec, env.Settings, env.Tag, env.Pkgrun, env.Log)
		if err != nil {
			return nil, err
		}
		return []executor.Executor{e}, nil
	}
	return nil, fmt.Errorf("executor %q: unknown scheme (want local, local:N[?cores=C&oversubscribe=F], ssh://user@host?slots=N, ssh:HOSTSFILE, slurm://?partition=P&slots=N, pull://LISTEN_ADDR?ttl=5m or elastic:KIND?max=N)", spec)
}

func sshConfig(h sshexec.Host, env Env) sshexec.Config {
	over := env.Oversubscribe
	if h.Oversubscribe > 0 {
		over = h.Oversubscribe
	}
	return sshexec.Config{Host: h, Settings: env.Settings, IdentityFile: env.SSHIdentity, KnownHosts: env.KnownHosts,
		Tag: env.Tag, Deadline: env.Deadline, Oversubscribe: over, Log: env.Log}
}

func openHostsFile(path string, env Env) ([]executor.Executor, error) {
	if path == "" {
		return nil, errors.New("executor ssh: want ssh://user@host or ssh:HOSTSFILE")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("executor hosts file: %w", err)
	}
	hosts, err := ParseHostsFile(path, b)
	if err != nil {
		return nil, err
	}
	var out []executor.Executor
	for _, h := range hosts {
		e, err := sshexec.New(sshConfig(h, env))
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// ParseHostsFile reads a hosts file: one ssh://user@host?slots=N spec a
// line (with all of ParseHost's settings, never= included); blank lines
// and lines starting with # are skipped. Errors name the file and line.
func ParseHostsFile(name string, b []byte) ([]sshexec.Host, error) {
	var hosts []sshexec.Host
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		h, err := ParseHost(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%s: no hosts", name)
	}
	return hosts, nil
}

// ParseHost parses
// ssh://user@host[:port][?slots=N&cores=N&oversubscribe=F&never=PATTERN&pkgrun=PATH&pkgsrc=DIR&workroot=DIR&label=L&name=NAME&deadline=D].
// never and label repeat; a '+' in the settings is a plus sign (package
// names such as gtk+3 have them), not a space.
func ParseHost(spec string) (sshexec.Host, error) {
	var h sshexec.Host
	u, err := url.Parse(spec)
	if err != nil {
		return h, fmt.Errorf("executor %s: %w", spec, err)
	}
	if u.Scheme != "ssh" || u.Hostname() == "" {
		return h, fmt.Errorf("executor %s: want ssh://user@host[:port]?slots=N", spec)
	}
	if u.User == nil || u.User.Username() == "" {
		return h, fmt.Errorf("executor %s: no user (ssh://user@host)", spec)
	}
	if _, ok := u.User.Password(); ok {
		return h, fmt.Errorf("executor %s: no passwords in specs; use a key", u.Redacted())
	}
	if u.Path != "" && u.Path != "/" {
		return h, fmt.Errorf("executor %s: no path after the host (use ?pkgsrc= and ?workroot=)", spec)
	}
	h.User, h.Host, h.Slots = u.User.Username(), u.Hostname(), 1
	if p := u.Port(); p != "" {
		if h.Port, err = strconv.Atoi(p); err != nil || h.Port < 1 || h.Port > 65535 {
			return h, fmt.Errorf("executor %s: bad port %q", spec, p)
		}
	}
	q, err := url.ParseQuery(strings.ReplaceAll(u.RawQuery, "+", "%2B"))
	if err != nil {
		return h, fmt.Errorf("executor %s: %w", spec, err)
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "slots":
			if h.Slots, err = strconv.Atoi(v); err != nil || h.Slots < 1 {
				return h, fmt.Errorf("executor %s: slots=%q: want a number of at least 1", spec, v)
			}
		case "pkgrun":
			h.Pkgrun = v
		case "pkgsrc":
			h.Pkgsrc = v
		case "workroot":
			h.WorkRoot = v
		case "name":
			h.Name = v
		case "label":
			h.Labels = append(h.Labels, vs...)
		case "never":
			if h.Never, err = noway.Parse(vs); err != nil {
				return h, fmt.Errorf("executor %s: %w", spec, err)
			}
		case "cores":
			if h.Cores, err = strconv.Atoi(v); err != nil || h.Cores < 1 {
				return h, fmt.Errorf("executor %s: cores=%q: want a number of at least 1 (leave it out to ask the host)", spec, v)
			}
		case "oversubscribe":
			if h.Oversubscribe, err = strconv.ParseFloat(v, 64); err != nil || !(h.Oversubscribe >= 1) || math.IsInf(h.Oversubscribe, 0) {
				return h, fmt.Errorf("executor %s: oversubscribe=%q: want a number of at least 1, e.g. 1.5", spec, v)
			}
		case "deadline":
			if h.Deadline, err = time.ParseDuration(v); err != nil || h.Deadline <= 0 {
				return h, fmt.Errorf("executor %s: deadline=%q: want a Go duration such as 15s", spec, v)
			}
		default:
			return h, fmt.Errorf("executor %s: unknown setting %q (want slots, cores, oversubscribe, never, pkgrun, pkgsrc, workroot, label, name, deadline)", spec, k)
		}
	}
	return h, nil
}
