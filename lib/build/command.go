package build

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/alecthomas/kong"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
	"github.com/pkgbulk/pkgbulk/lib/version"
)

// Description is pkgrun's --help text.
const Description = `Build one package in a clean sandbox, the way pbulk's pkg-build does.

Input: the package's presolve record on stdin (or --input FILE), as
pbulk-build hands it to pkg-build: PKGNAME=, PKG_LOCATION=, DEPENDS=,
CATEGORIES=, MULTI_VERSION=, USE_DESTDIR=, BOOTSTRAP_PKG=, USERGROUP_PHASE=,
NO_BIN_ON_FTP= (other keys are ignored; when a key repeats, the last value
wins). Settings come from flags, or from a JSON job document (--job FILE,
the lib/job Settings object: {"pkgsrc": ..., "store": ..., "max_time":
"2h", "store_access": {"s3_endpoint": ..., "ssh_identity": ...}, ...}); a
flag given on the command line overrides the document. The store-access
settings are those of the "Store access" flags (s3_endpoint, s3_region,
s3_allow_http, ssh_identity, known_hosts, connect_timeout); S3 keys come
only from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the AWS
credentials file), never from a flag or the document.

Every command of the build runs in a sandbox of the job's own (Linux mount,
PID, IPC and network namespaces; pkgrun must run as root): the host's
system directories read-only, the pkgsrc tree read-only at its path, the
bootstrap kit (--bootstrap-kit, pbulk's tarball of the bootstrapped prefix
and pkgdb) at the paths it was made for, over a private copy-on-write layer
(or, without a kit, an empty prefix at --prefix), and the job's own /tmp
and /var/tmp. Nothing else of the host is visible (the work root, a file
store and the store's key files are hidden), and the environment is a fixed
minimal one plus --env: no store keys reach a build. WRKOBJDIR=/tmp/work and
PACKAGES=/tmp/packages come from the environment, so the kit's mk.conf
decides when it sets them; nothing else is put on make's command line.

Steps: version-skew check (make show-vars: PKGNAME must equal the job's),
up-to-date check against the store (unless --force), the DEPENDS packages
fetched from the store's All/ and installed with the kit's pkg_add (or
pkgrun's own installer when the kit has none), the phases pre-clean,
depends, checksum (the only one with network, unless --network),
configure, build, install, package (stage-package-create and STAGE_PKGFILE,
or make package and PKGFILE in trees without them; then an install test),
deinstall, clean, each with a log. The package goes to the store as
All/<PKGNAME>.tgz with its pkg_summary fragment index/<PKGNAME>.pkginfo;
the logs of a failed build go to bulklog/<PKGNAME>/, and a successful build
removes that directory (it exists iff the last attempt failed).

Output: one JSON object on stdout (lib/job Result, "version": 1):
  {"version":1,"pkgname":"foo-1.0","pkgpath":"cat/foo","status":"done",
   "failed_phase":"","message":"","phases":[{"name":"build","ok":true,
   "wall_ms":1200,"cpu_ms":900,"log":""},...],"wall_ms":..,"cpu_ms":..,
   "disk_bytes":..,"package":"All/foo-1.0.tgz",
   "fragment":"index/foo-1.0.pkginfo","log_dir":"","host":"..."}
status is done, up-to-date, failed, skew or timeout.

Exit status: 0 done or up-to-date; 1 failed, skew or timeout (the JSON says
which); 2 the job could not be run (bad input or settings, store
unreachable, the sandbox could not be set up, interrupted by SIGINT/SIGTERM);
3 the builder ran out of disk space (the package is not at fault); with 2
and 3 nothing is printed on stdout. On SIGINT/SIGTERM the build's process group is killed at once.`

// Tool is pkgrun's command line: a build by default, or pkgrun kit.
type Tool struct {
	Build Command     `cmd:"" default:"withargs" help:"Build one package (the default: pkgrun [flags] < record)."`
	Kit   KitCommand  `cmd:"" help:"Make a bootstrap kit from a pkgsrc tree."`
	Exec  ExecCommand `cmd:"" help:"Run one command in a job's sandbox (e.g. a scan with the kit's bmake)."`
	// Version is what executors ask a builder before its first job.
	Version version.Cmd `cmd:"" help:"Print the pkgbulk release and the job protocol version this pkgrun speaks (--json: for executors)."`
}

// Command is pkgrun's build command line.
type Command struct {
	Job   string `help:"JSON job settings document (lib/job Settings)." type:"existingfile" placeholder:"FILE"`
	Input string `help:"Read the presolve record from FILE instead of stdin." type:"existingfile" placeholder:"FILE"`

	SettingsFlags `embed:""`
}

// SettingsFlags are pkgrun's settings (job.Settings) as command-line
// flags: the one definition that pkgrun and pkgsched run (which hands
// them to every pkgrun) both embed in their kong grammar, so the two
// tools always take the same flags.
type SettingsFlags struct {
	Pkgsrc       string        `help:"pkgsrc tree root." placeholder:"DIR"`
	Store        string        `help:"Store URL: file:///dir, sftp://user@host/dir, s3://bucket/prefix." placeholder:"URL"`
	Make         string        `help:"make program in the sandbox (default: the kit's bin/bmake, else bmake from PATH)." placeholder:"PROG"`
	WorkRoot     string        `help:"Directory for the per-job prefix and work directories (default $TMPDIR/pkgrun)." placeholder:"DIR"`
	BootstrapKit string        `help:"pbulk's bootstrap kit: a tarball of the bootstrapped prefix and pkgdb, seen by every job at the paths it was made for (make one with pkgrun kit)." placeholder:"FILE"`
	Prefix       string        `help:"Without a kit: where the job's empty prefix is mounted (default /usr/pkg)." placeholder:"DIR"`
	Network      string        `help:"Which phases have the host's network: checksum (the default: the phase that fetches distfiles), all or none." enum:",checksum,all,none" default:"" placeholder:"PHASES"`
	SandboxHide  []string      `name:"sandbox-hide" sep:"none" help:"Another host path a build must not see (repeatable)." placeholder:"PATH"`
	MaxTime      time.Duration `help:"Wall-time limit of the job (0: none), e.g. 2h." placeholder:"DURATION"`
	NoOutputTime time.Duration `help:"Kill the build when no log grew for this long (0: never)." placeholder:"DURATION"`
	KeepWorkdir  bool          `help:"Keep the job directory of a failed build (and store WRKDIR as wrkdir.tar.gz)."`
	SkipAgeCheck bool          `help:"Up-to-date check: do not require dependencies to be older than the package."`
	Force        bool          `help:"Build even when the package in the store is up to date."`
	PkgSuffix    string        `help:"Package file suffix (default .tgz)." placeholder:"SUFFIX"`
	UnprivUser   string        `name:"unprivileged-user" help:"When run as root: run configure, build (and user-destdir install) as this user." placeholder:"USER"`
	Env          []string      `sep:"none" help:"Extra KEY=VALUE for the environment of make (repeatable; commas are part of the value)." placeholder:"KEY=VALUE"`

	Access job.StoreAccess `embed:"" group:"Store access"`
}

// Settings returns the settings the flags give, for putting over a job
// document (job.Settings.Override).
func (f *SettingsFlags) Settings() job.Settings {
	s := job.Settings{
		Pkgsrc: f.Pkgsrc, Store: f.Store, Make: f.Make, WorkRoot: f.WorkRoot,
		BootstrapKit: f.BootstrapKit, PkgSuffix: f.PkgSuffix, UnprivUser: f.UnprivUser,
		Prefix: f.Prefix, Network: f.Network, SandboxHide: f.SandboxHide,
		KeepWorkdir: f.KeepWorkdir, SkipAgeCheck: f.SkipAgeCheck, Force: f.Force,
		Environment: f.Env,
	}
	if f.MaxTime > 0 {
		s.MaxTime = f.MaxTime.String()
	}
	if f.NoOutputTime > 0 {
		s.NoOutputTime = f.NoOutputTime.String()
	}
	access := f.Access
	s.StoreAccess = &access
	return s
}

// Run is pkgrun.
func (c *Command) Run(ctx context.Context, g *cli.Globals, k *kong.Context) error {
	s, err := c.settings()
	if err != nil {
		return err
	}
	opts := storeopen.AccessOptions(s.StoreAccess)
	in := g.Stdin
	inName := "stdin"
	if c.Input != "" {
		f, err := os.Open(c.Input)
		if err != nil {
			return err
		}
		defer f.Close()
		in, inName = f, c.Input
	}
	j, err := ParseJob(inName, in)
	if err != nil {
		return err
	}
	if s.Store == "" {
		return fmt.Errorf("no store: give --store or \"store\" in the job document")
	}
	st, err := storeopen.Open(ctx, s.Store, opts)
	if err != nil {
		return fmt.Errorf("open store %s: %w", s.Store, err)
	}
	defer st.Close()
	b := &Builder{Settings: s, Store: st}
	if cli.IsTerminal(g.Stderr) {
		b.Progress = g.Stderr
	}
	res, err := b.Run(ctx, j)
	if err != nil {
		return err
	}
	if err := res.Encode(g.Stdout); err != nil {
		return err
	}
	if !res.Status.Success() {
		return cli.Failed("%s: %s: %s", j.PkgName, res.Status, res.Message)
	}
	return nil
}

// settings merges the job document and the flags.
func (c *Command) settings() (job.Settings, error) {
	var s job.Settings
	if c.Job != "" {
		var err error
		if s, err = job.ReadSettings(c.Job); err != nil {
			return s, err
		}
	}
	flags := c.SettingsFlags.Settings()
	return s.Override(flags), nil
}
