// Package job is the contract between the scheduler (pkgsched, through an
// executor) and the builder of one package (pkgrun): what a job is and the
// machine-readable result pkgrun prints on stdout.
//
// The job itself travels like pbulk's pkg-build input: the package's
// presolve record on pkgrun's stdin (PKGNAME= through DEPENDS=). Settings
// that pbulk keeps in pbulk.conf travel as flags of pkgrun, or as a JSON
// Settings document (pkgrun --job FILE).
//
// The result is one JSON object (Result) on stdout, followed by a newline.
// It is versioned by the "version" field; readers reject versions they do
// not know. pkgrun's exit code agrees with the result: 0 for done and
// up-to-date, 1 for failed, skew and timeout, 2 when pkgrun could not run
// the job at all (bad input, store unreachable); a scheduler treats exit 2,
// a missing or unparsable result and death by a signal as a crash of the
// builder, retried a bounded number of times, never as a failed build.
package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// ExitNoSpace is pkgrun's exit code when the builder itself ran out of
// disk space (its work root, or its own installer writing a dependency):
// the job is not at fault, so a scheduler requeues it without counting a
// crash against the package and stops using that builder until space is
// freed. It prints no Result.
const ExitNoSpace = 3

// ResultVersion is the version of the Result document.
const ResultVersion = 1

// ProtocolVersion is the version of the job protocol as a whole: the
// Settings document, the record on stdin, the Result on stdout and the
// exit codes. A scheduler runs only builders whose pkgrun speaks the same
// (pkgrun version --json says which, see lib/version); it goes up with
// any change a builder of the previous version would misread.
const ProtocolVersion = 1

// Status is the outcome of one job.
type Status string

// The statuses pkgrun reports. They map onto pbulk's states: done and
// up-to-date are pbulk's "done"; failed and timeout are "failed"; skew is
// ours (the tree's PKGNAME for the path differs from the scan's).
const (
	StatusDone     Status = "done"
	StatusUpToDate Status = "up-to-date"
	StatusFailed   Status = "failed"
	StatusSkew     Status = "skew"
	StatusTimeout  Status = "timeout"
)

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusDone, StatusUpToDate, StatusFailed, StatusSkew, StatusTimeout:
		return true
	}
	return false
}

// Success reports whether dependents may be built after s.
func (s Status) Success() bool { return s == StatusDone || s == StatusUpToDate }

// Settings are the per-run settings of pkgrun that a scheduler passes with
// every job (pbulk.conf's equivalents). Empty fields take pkgrun's defaults.
type Settings struct {
	Pkgsrc       string   `json:"pkgsrc,omitempty"`         // pkgsrc tree root
	Store        string   `json:"store,omitempty"`          // store URL: packages, logs, fragments
	Make         string   `json:"make,omitempty"`           // make program in the sandbox (default: the kit's bin/bmake, else bmake)
	WorkRoot     string   `json:"work_root,omitempty"`      // where per-job prefixes and work dirs are made
	BootstrapKit string   `json:"bootstrap_kit,omitempty"`  // pbulk's bootstrap kit: a tarball of the bootstrapped prefix and pkgdb
	MaxTime      string   `json:"max_time,omitempty"`       // Go duration: maximum wall time of the job
	NoOutputTime string   `json:"no_output_time,omitempty"` // Go duration: maximum time without log output
	KeepWorkdir  bool     `json:"keep_workdir,omitempty"`   // keep the work dir of failed builds
	SkipAgeCheck bool     `json:"skip_age_check,omitempty"` // pbulk's skip_age_check for up-to-date checks
	Force        bool     `json:"force,omitempty"`          // build even when the package is up to date
	PkgSuffix    string   `json:"pkg_suffix,omitempty"`     // default .tgz
	UnprivUser   string   `json:"unprivileged_user,omitempty"`
	Environment  []string `json:"environment,omitempty"` // extra KEY=VALUE for make
	// Prefix is where a job's empty prefix is mounted in its sandbox when
	// there is no bootstrap kit (default /usr/pkg); with a kit, the kit's
	// own paths are used.
	Prefix string `json:"prefix,omitempty"`
	// Network says which phases have the host's network: "checksum" (the
	// default: only the phase that fetches distfiles), "all" or "none".
	Network string `json:"network,omitempty"`
	// SandboxHide lists more host paths a build must not see (the work
	// root, a file store and the store's key files are always hidden).
	SandboxHide []string `json:"sandbox_hide,omitempty"`
	// StoreAccess says how to reach an sftp:// or s3:// store; nil leaves
	// it to pkgrun's flags and environment.
	StoreAccess *StoreAccess `json:"store_access,omitempty"`
}

// StoreAccess are the store-access settings: the one definition that is
// at once the "store_access" object of the job document (JSON names) and
// the "Store access" command-line flags of every tool that opens a store
// (kong tags: tools embed it as
//
//	Access job.StoreAccess `embed:"" group:"Store access"`
//
// and lib/store/storeopen.Options embeds it too). A scheduler hands it
// to every builder. Empty fields leave the choice to the builder's flags,
// then its environment. S3 keys are not here on purpose: the job
// document is written to disk for every job and a secret on a command
// line shows in ps; the keys reach pkgrun through its environment
// (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the AWS credentials
// file).
type StoreAccess struct {
	S3Endpoint     string   `json:"s3_endpoint,omitempty" name:"s3-endpoint" placeholder:"URL" help:"S3 endpoint, e.g. https://s3.example.org or http://127.0.0.1:9000 (default: ?endpoint= in the URL, $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS)."`
	S3Region       string   `json:"s3_region,omitempty" name:"s3-region" placeholder:"REGION" help:"S3 region (default: ?region= in the URL, $AWS_REGION, else asked from the server)."`
	S3AllowHTTP    bool     `json:"s3_allow_http,omitempty" name:"s3-allow-http" help:"Allow a plain-http S3 endpoint that is not on loopback."`
	SSHIdentity    string   `json:"ssh_identity,omitempty" name:"ssh-identity" type:"path" placeholder:"FILE" help:"SSH private key for sftp:// stores (default: ssh-agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa)."`
	KnownHosts     string   `json:"known_hosts,omitempty" name:"known-hosts" type:"path" placeholder:"FILE" help:"known_hosts file that must list the sftp server's host key (default: ~/.ssh/known_hosts)."`
	ConnectTimeout Duration `json:"connect_timeout,omitempty" name:"connect-timeout" placeholder:"DURATION" help:"Give up connecting to a store server after this long (default 15s)."`
}

// Override returns a copy of a (which may be nil) with the non-empty
// fields of o put over it, as a command-line flag overrides the job
// document; nil when nothing is set at all.
func (a *StoreAccess) Override(o StoreAccess) *StoreAccess {
	var r StoreAccess
	if a != nil {
		r = *a
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&r.S3Endpoint, o.S3Endpoint)
	set(&r.S3Region, o.S3Region)
	set(&r.SSHIdentity, o.SSHIdentity)
	set(&r.KnownHosts, o.KnownHosts)
	if o.ConnectTimeout > 0 {
		r.ConnectTimeout = o.ConnectTimeout
	}
	r.S3AllowHTTP = r.S3AllowHTTP || o.S3AllowHTTP
	if r == (StoreAccess{}) {
		return nil
	}
	return &r
}

// UnmarshalJSON reads the store_access object strictly: an unknown key
// or a bad connect_timeout is an error that names it.
func (a *StoreAccess) UnmarshalJSON(b []byte) error {
	type plain StoreAccess // without this method
	var shadow struct {
		plain
		ConnectTimeout string `json:"connect_timeout,omitempty"`
	}
	// Strict, as ReadSettings: a misspelt key is an error (a custom
	// UnmarshalJSON does not inherit the outer decoder's setting).
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&shadow); err != nil {
		return fmt.Errorf("store_access: %w", err)
	}
	*a = StoreAccess(shadow.plain)
	if shadow.ConnectTimeout != "" {
		if err := a.ConnectTimeout.UnmarshalText([]byte(shadow.ConnectTimeout)); err != nil {
			return fmt.Errorf("store_access: connect_timeout: %w", err)
		}
	}
	return nil
}

// Duration is a positive time.Duration written as a Go duration string
// ("30s") in JSON and on the command line; 0 means unset.
type Duration time.Duration

// MarshalText writes d as a Go duration ("1m30s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a positive Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v <= 0 {
		return fmt.Errorf("bad duration %q (want a positive Go duration such as 30s)", b)
	}
	*d = Duration(v)
	return nil
}

// String is d as a Go duration.
func (d Duration) String() string { return time.Duration(d).String() }

// Phase is one build phase as pkgrun ran it.
type Phase struct {
	Name   string `json:"name"`          // pre-clean, depends, checksum, configure, build, install, package, deinstall, clean
	OK     bool   `json:"ok"`            // the phase succeeded
	WallMS int64  `json:"wall_ms"`       // wall-clock milliseconds
	CPUMS  int64  `json:"cpu_ms"`        // user+system CPU milliseconds of the phase's processes
	Log    string `json:"log,omitempty"` // store name of the phase's log, e.g. bulklog/foo-1.0/build.log
}

// Result is what pkgrun prints on stdout for one job.
type Result struct {
	Version     int     `json:"version"`
	PkgName     string  `json:"pkgname"`
	PkgPath     string  `json:"pkgpath"`
	Status      Status  `json:"status"`
	FailedPhase string  `json:"failed_phase,omitempty"` // the phase that failed or timed out
	Message     string  `json:"message,omitempty"`      // one line for humans: why it failed, the skewed name...
	Phases      []Phase `json:"phases,omitempty"`
	WallMS      int64   `json:"wall_ms"`
	CPUMS       int64   `json:"cpu_ms"`
	DiskBytes   int64   `json:"disk_bytes"`          // peak size of the job's work dir and prefix
	Package     string  `json:"package,omitempty"`   // store name of the package, e.g. All/foo-1.0.tgz
	Fragment    string  `json:"fragment,omitempty"`  // store name of the pkg_summary fragment
	LogDir      string  `json:"log_dir,omitempty"`   // store name of the log directory
	Host        string  `json:"host,omitempty"`      // where it ran
	MakeJobs    int     `json:"make_jobs,omitempty"` // the MAKE_JOBS the build was given (0: none)
	// MakeJobsSafe is the package's MAKE_JOBS_SAFE as make show-vars
	// printed it ("no" for packages that must not get -j; "" unknown).
	MakeJobsSafe string `json:"make_jobs_safe,omitempty"`
}

// Encode writes r as one JSON line.
func (r *Result) Encode(w io.Writer) error {
	r.Version = ResultVersion
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// DecodeResult parses pkgrun's stdout. Anything that is not exactly one
// valid Result of a known version is an error: the scheduler counts it as
// a crashed builder.
func DecodeResult(b []byte) (*Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("parse pkgrun result: %w", err)
	}
	if r.Version != ResultVersion {
		return nil, fmt.Errorf("parse pkgrun result: unknown version %d", r.Version)
	}
	if !r.Status.Valid() {
		return nil, fmt.Errorf("parse pkgrun result: unknown status %q", r.Status)
	}
	if r.PkgName == "" {
		return nil, fmt.Errorf("parse pkgrun result: no pkgname")
	}
	return &r, nil
}

// ReadSettings reads a JSON job document strictly: an unknown field or
// anything after the settings object is an error naming the file, so a
// misspelt setting is never silently ignored.
func ReadSettings(path string) (Settings, error) {
	var s Settings
	b, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("read job document: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("job document %s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return s, fmt.Errorf("job document %s: trailing data after the settings object", path)
	}
	return s, nil
}

// Override returns s with the settings given in o put over it, as
// command-line flags override a job document: non-empty strings replace,
// true booleans switch on, environment entries are appended, and store
// access is overridden field by field.
func (s Settings) Override(o Settings) Settings {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&s.Pkgsrc, o.Pkgsrc)
	set(&s.Store, o.Store)
	set(&s.Make, o.Make)
	set(&s.WorkRoot, o.WorkRoot)
	set(&s.BootstrapKit, o.BootstrapKit)
	set(&s.MaxTime, o.MaxTime)
	set(&s.NoOutputTime, o.NoOutputTime)
	set(&s.PkgSuffix, o.PkgSuffix)
	set(&s.UnprivUser, o.UnprivUser)
	set(&s.Prefix, o.Prefix)
	set(&s.Network, o.Network)
	s.SandboxHide = append(append([]string(nil), s.SandboxHide...), o.SandboxHide...)
	s.KeepWorkdir = s.KeepWorkdir || o.KeepWorkdir
	s.SkipAgeCheck = s.SkipAgeCheck || o.SkipAgeCheck
	s.Force = s.Force || o.Force
	s.Environment = append(append([]string(nil), s.Environment...), o.Environment...)
	if o.StoreAccess != nil {
		s.StoreAccess = s.StoreAccess.Override(*o.StoreAccess)
	}
	return s
}
