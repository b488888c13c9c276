package pullworker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/pkgbulk/pkgbulk/lib/build"
	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/imds"
	"github.com/pkgbulk/pkgbulk/lib/pull"
	"github.com/pkgbulk/pkgbulk/lib/treerev"
)

// Command is `pkgrun worker`.
type Command struct {
	Server       string        `required:"" help:"The pull server's URL (pkgsched run --executor pull://...), https://HOST:PORT." placeholder:"URL"`
	TokenFile    string        `required:"" type:"existingfile" help:"File holding the registration token (pkgsched token add); never give it on the command line." placeholder:"FILE"`
	Fingerprint  string        `help:"Pin the server's certificate: its SHA-256 fingerprint (sha256:HEX or HEX, as pkgsched prints it)." placeholder:"SHA256"`
	CAFile       string        `name:"ca-file" type:"existingfile" help:"PEM CA certificates to trust instead of the system's (without --fingerprint)." placeholder:"FILE"`
	Name         string        `help:"This worker's name in the server's status (default: the host name)." placeholder:"NAME"`
	Label        []string      `sep:"none" help:"A label k=v of this worker (repeatable)." placeholder:"K=V"`
	Never        []string      `sep:"none" help:"A pkgpath glob (lang/rust, www/firefox*) or package pattern (gcc1[0-3]*) this worker will not build (repeatable)." placeholder:"PATTERN"`
	Cores        int           `help:"Cores this worker offers to its jobs (default: all of the machine's)." placeholder:"N"`
	TreeRevision string        `help:"The pkgsrc tree's revision to report (default: git rev-parse HEAD in the tree, or CVS/Tag)." placeholder:"REV"`
	PollWait     time.Duration `help:"Longest lease poll (default: the server's)." placeholder:"DURATION"`
	SpotIMDS     string        `name:"spot-imds" help:"Watch this EC2 instance metadata service (e.g. http://169.254.169.254) for a spot interruption notice: on one, kill the build, release the lease and exit 0." placeholder:"URL"`

	build.SettingsFlags `embed:""`
}

// Help is kong's long help for pkgrun worker.
func (c *Command) Help() string {
	return `Join a bulk build as a volunteer builder: dial out to pkgsched's pull
server over HTTPS, register with the token from --token-file, take one job
at a time, build it exactly as pkgrun does (in its sandbox, with this
machine's pkgsrc tree and bootstrap kit), heartbeat while it builds,
upload the job's package, logs and index fragment through the server, and
report. Nothing connects to the worker. A job whose lease the server ends
(revoked, replaced, expired) is killed at once and its work dropped.

Example:
  pkgrun worker --server https://bulk.example.org:8443 --token-file /etc/pkgbulk/token \
      --fingerprint sha256:3f2a... --pkgsrc /usr/pkgsrc --bootstrap-kit kit.tgz \
      --work-root /var/tmp/pkgbulk --never lang/rust

Exit status: 0 after SIGTERM or SIGINT (the lease in hand is released
first), after a preemption notice, or when the server retires the worker;
2 when the token is revoked, the server refuses the worker (skew: its tree
or platform is not the scan's), or the flags are wrong.`
}

// Run is pkgrun worker.
func (c *Command) Run(ctx context.Context, g *cli.Globals, k *kong.Context) error {
	o, err := c.Options(ctx)
	if err != nil {
		return err
	}
	o.Log = g.Stderr
	if c.SpotIMDS != "" {
		// A spot interruption notice preempts the worker.
		preempt := make(chan struct{})
		o.Preempt = preempt
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			n, err := imds.NewWatcher(imds.Config{URL: c.SpotIMDS, Interval: 2 * time.Second}).Wait(wctx)
			if err == nil {
				fmt.Fprintf(g.Stderr, "pkgrun worker: spot interruption notice (%s at %s): leaving\n", n.Action, n.Time.Format(time.RFC3339))
				close(preempt)
			}
		}()
	}
	w, err := New(o)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// Options turns the flags into a worker's options and its client.
func (c *Command) Options(ctx context.Context) (Options, error) {
	var o Options
	tok, err := ReadToken(c.TokenFile)
	if err != nil {
		return o, err
	}
	cl, err := pull.NewClient(pull.ClientConfig{URL: c.Server, Fingerprint: c.Fingerprint, CAFile: c.CAFile})
	if err != nil {
		return o, err
	}
	s := c.SettingsFlags.Settings()
	if s.Store != "" {
		return o, errors.New("--store: a worker has no store of its own: it stores through the server")
	}
	s.StoreAccess = nil
	if s.Pkgsrc == "" {
		return o, errors.New("no pkgsrc tree given (--pkgsrc)")
	}
	abs, err := filepath.Abs(c.TokenFile)
	if err != nil {
		return o, err
	}
	// The token file is never visible to a build.
	s.SandboxHide = append(s.SandboxHide, abs)
	labels := map[string]string{}
	for _, kv := range c.Label {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return o, fmt.Errorf("--label %q: want KEY=VALUE", kv)
		}
		labels[k] = v
	}
	if len(c.Never) > pull.MaxNoWay {
		return o, fmt.Errorf("--never: %d entries, at most %d", len(c.Never), pull.MaxNoWay)
	}
	for _, p := range c.Never {
		if p == "" {
			return o, errors.New("--never: empty pattern")
		}
	}
	name := c.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	cores := c.Cores
	if cores <= 0 {
		cores = runtime.NumCPU()
	}
	rev := c.TreeRevision
	if rev == "" {
		rev = treerev.Of(ctx, s.Pkgsrc)
	}
	o = Options{
		Client: cl, Reader: ServerReader{C: cl}, Token: tok, Settings: s, PollWait: c.PollWait,
		Register: pull.RegisterRequest{
			Host: name, Platform: LocalPlatform(), TreeRevision: rev, Cores: cores,
			Labels: labels, NoWay: c.Never,
		},
	}
	return o, nil
}

// ReadToken reads a registration token file: one line, at most 4 kB. A
// file others may read is refused (the token is a secret).
func ReadToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, 4097))
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	n := len(b)
	if n > 4096 {
		return "", fmt.Errorf("token file %s: longer than 4 kB", path)
	}
	tok := strings.TrimSpace(string(b[:n]))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("token file %s: want the token alone on one line", path)
	}
	return tok, nil
}
