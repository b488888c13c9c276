// Package pull is the volunteer-builder protocol: workers that nobody can
// connect to (a box behind NAT, a one-off VM) dial out to pkgsched over
// HTTPS, trade a registration token for a session, long-poll for a lease
// on one job, build it with pkgrun, heartbeat while it builds, upload the
// job's objects into staging, and report pkgrun's result. The server
// (Server) keeps leases, tokens and sessions in the build database, so a
// worker that comes back late after its lease was replaced is refused
// (fencing), also across a restart of pkgsched.
//
// This file is the wire protocol (docs/pull-protocol.md describes it for
// humans); client.go is the Go client the worker (pkgrun worker) uses.
//
// # Endpoints
//
// Every request body and response is JSON unless said otherwise; errors
// are an Error document with a 4xx or 5xx status.
//
//	POST /v1/register     RegisterRequest → RegisterResponse (no session yet)
//	POST /v1/lease        LeaseRequest → 200 Lease, or 204 when the poll timed out
//	POST /v1/heartbeat    HeartbeatRequest → HeartbeatResponse (session + lease headers)
//	PUT  /v1/object/NAME  raw bytes → 201 (session + lease headers; Content-Length required)
//	POST /v1/result       ResultReport → ResultResponse (session + lease headers)
//	POST /v1/release      ReleaseRequest → 200 (session + lease headers)
//	GET  /v1/object/NAME  raw bytes of a finished object: All/..., index/... (session header)
//	HEAD /v1/object/NAME  its size (Content-Length) and Last-Modified
//	GET  /v1/list?prefix=All/  ObjectList of the objects under All/ or index/
//	POST /v1/bye          → 200: the session ends (the worker leaves)
//
// The session travels as "Authorization: Bearer SESSION"; a lease as the
// headers HeaderLease and HeaderAttempt. The registration token travels
// only in the body of /v1/register, never in a URL or header that a proxy
// might log.
//
// # Status codes
//
//	400 garbage: a body that does not parse, a missing or malformed header
//	401 no session, an unknown or ended session, an unknown token
//	403 a revoked token; an object outside the lease's scope
//	404 an unknown object (GET), an unknown endpoint
//	409 fenced: the lease is not the job's current lease (expired,
//	    replaced, released, revoked, already reported)
//	411 a PUT without Content-Length
//	412 skew: the worker's tree revision or platform differs from the scan's
//	410 the session ended: the worker was retired, replaced by a newer
//	    registration of its token, or said bye
//	413 a body or object over its size limit
//	429 too many registrations at once (retry after a pause)
//	503 the server is shutting down (retry later)
//	507 the worker ran out of disk space in an earlier job: no more jobs
package pull

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/job"
)

// DefaultPollWait is how long a lease poll is held when the request does
// not say.
const DefaultPollWait = 30 * time.Second

// ProtocolVersion is sent in RegisterRequest.Version; the server refuses
// versions it does not speak (412).
const ProtocolVersion = 1

// Paths of the endpoints.
const (
	PathRegister  = "/v1/register"
	PathLease     = "/v1/lease"
	PathHeartbeat = "/v1/heartbeat"
	PathObject    = "/v1/object/" // + the object's store name, e.g. All/foo-1.0.tgz
	PathResult    = "/v1/result"
	PathRelease   = "/v1/release"
	PathBye       = "/v1/bye"
	PathList      = "/v1/list"
)

// Headers.
const (
	// HeaderLease carries the lease id of a heartbeat, upload, result or
	// release.
	HeaderLease = "Pkgbulk-Lease"
	// HeaderAttempt carries the lease's attempt (decimal).
	HeaderAttempt = "Pkgbulk-Attempt"
	// HeaderSHA256 may carry the hex SHA-256 of an uploaded object; the
	// server refuses the upload (400) when the bytes do not match.
	HeaderSHA256 = "Pkgbulk-Sha256"
)

// Size limits. The server refuses larger bodies with 413 and keeps
// nothing of them.
const (
	// MaxJSONBody bounds every JSON request body but a result.
	MaxJSONBody = 1 << 20
	// MaxResultBody bounds a ResultReport: pkgrun's stdout (at most
	// protocol.MaxStdout) plus its stderr tail, encoded.
	MaxResultBody = 12 << 20
	// MaxPackage is the default limit of one package file.
	MaxPackage = 4 << 30
	// MaxLog is the default limit of one build log file.
	MaxLog = 256 << 20
	// MaxFragment is the default limit of an index fragment.
	MaxFragment = 1 << 20
	// MaxLogFiles bounds how many files a lease may put in its log
	// directory.
	MaxLogFiles = 64
	// MaxNoWay bounds the entries of a worker's no-way list, MaxLabels its
	// labels.
	MaxNoWay  = 1000
	MaxLabels = 64
)

// Error codes of Error.Code.
const (
	CodeBadRequest   = "bad_request"   // 400
	CodeUnauthorized = "unauthorized"  // 401
	CodeRevoked      = "revoked"       // 403: the token was revoked
	CodeOutOfScope   = "out_of_scope"  // 403: an object the lease may not write
	CodeNotFound     = "not_found"     // 404
	CodeFenced       = "fenced"        // 409
	CodeNoLength     = "length_needed" // 411
	CodeSkew         = "skew"          // 412
	CodeGone         = "gone"          // 410: the session ended
	CodeTooLarge     = "too_large"     // 413
	CodeBusy         = "busy"          // 429
	CodeUnavailable  = "unavailable"   // 503
	CodeNoSpace      = "no_space"      // 507
)

// Error is the body of every error response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// RegisterRequest trades a registration token for a session.
type RegisterRequest struct {
	Version int    `json:"version"` // ProtocolVersion
	Token   string `json:"token"`   // from pkgsched token add; read from a file by the worker
	// Host is the worker's host name, for status and build_state.worker.
	Host string `json:"host"`
	// Platform is the worker's OPSYS, OS_VERSION and MACHINE_ARCH as
	// pkgsrc names them.
	Platform Platform `json:"platform"`
	// TreeRevision identifies the worker's pkgsrc tree (a git commit or
	// CVS date tag, as pkgscan recorded the scan's); "" when unknown.
	TreeRevision string `json:"tree_revision"`
	// Cores is how many cores the worker offers (MAKE_JOBS across its
	// jobs); at least 1.
	Cores int `json:"cores"`
	// Slots is how many jobs it builds at once (default 1).
	Slots int `json:"slots,omitempty"`
	// Labels are the worker's own labels (k=v), added to the token's.
	Labels map[string]string `json:"labels,omitempty"`
	// NoWay lists pkgpaths and patterns (lib/pattern, e.g. "lang/rust",
	// "www/firefox*", "gcc1[0-3]*") the worker will not build.
	NoWay []string `json:"no_way,omitempty"`
}

// Platform is a builder's system as pkgsrc names it.
type Platform struct {
	OpSys     string `json:"opsys"`      // NetBSD, Linux, Darwin
	OSVersion string `json:"os_version"` // 10.0, 6.1.0-13-amd64
	Arch      string `json:"arch"`       // MACHINE_ARCH: x86_64, aarch64
}

func (p Platform) String() string { return p.OpSys + " " + p.OSVersion + "/" + p.Arch }

// ParsePlatform reads "OPSYS/ARCH" or "OPSYS OSVERSION/ARCH" (pbulk's
// PLATFORM); an empty part is not checked.
func ParsePlatform(s string) (Platform, error) {
	var p Platform
	sys, arch, ok := strings.Cut(s, "/")
	if !ok {
		return p, fmt.Errorf("platform %q: want OPSYS/ARCH or OPSYS OSVERSION/ARCH", s)
	}
	p.Arch = arch
	p.OpSys, p.OSVersion, _ = strings.Cut(strings.TrimSpace(sys), " ")
	return p, nil
}

// RegisterResponse opens a session.
type RegisterResponse struct {
	Session string `json:"session"` // secret: Authorization: Bearer SESSION
	Worker  string `json:"worker"`  // the worker's name in status and build_state.worker, e.g. "pull:alice/host1"
	// LeaseTTL is how long a lease lives without a heartbeat.
	LeaseTTL Duration `json:"lease_ttl"`
	// Heartbeat is how often to heartbeat a lease (a third of LeaseTTL).
	Heartbeat Duration `json:"heartbeat"`
	// PollWait is the longest a lease poll is held open by the server.
	PollWait Duration `json:"poll_wait"`
	// Labels are the labels the server recorded (the token's and the
	// worker's).
	Labels map[string]string `json:"labels,omitempty"`
}

// LeaseRequest asks for one job. The session's registration says what the
// worker is; a poll repeats its tree revision so that a tree updated on
// the worker between jobs is caught (412).
type LeaseRequest struct {
	TreeRevision string `json:"tree_revision"`
	// Wait is how long the server may hold the poll when no job is ready
	// (at most RegisterResponse.PollWait; 0: the server's default).
	Wait Duration `json:"wait,omitempty"`
}

// Lease is one job handed to one worker. ID and Attempt go with every
// later request about it.
type Lease struct {
	ID      string    `json:"id"`
	Attempt int       `json:"attempt"` // 1 for the job's first lease, counting every lease ever granted for the package
	Expires time.Time `json:"expires"` // the lease ends here unless heartbeated
	PkgName string    `json:"pkgname"`
	PkgPath string    `json:"pkgpath"`
	// Record is the presolve record: pkgrun's stdin.
	Record string `json:"record"`
	// Settings are the run's pkgrun settings without what is the
	// worker's own (Pkgsrc, WorkRoot, BootstrapKit) and without the
	// store (Store, StoreAccess are empty: the worker builds into a local
	// staging store and uploads through the server).
	Settings job.Settings `json:"settings"`
	// MakeJobs is the MAKE_JOBS granted (already in Record as a
	// MAKE_JOBS= line when > 0).
	MakeJobs int `json:"make_jobs,omitempty"`
	// Objects is what the lease may upload (ObjectScope).
	Objects ObjectScope `json:"objects"`
}

// ObjectScope lists the store names a lease may write (as staging
// objects, promoted by the server after the result is checked).
type ObjectScope struct {
	Package  string `json:"package"`  // All/<PKGNAME><suffix>
	LogDir   string `json:"log_dir"`  // bulklog/<PKGNAME>/ (files directly inside it)
	Fragment string `json:"fragment"` // index/<PKGNAME>.pkginfo
}

// HeartbeatRequest keeps a lease alive.
type HeartbeatRequest struct {
	// Phase is the build phase now, for status ("" when unknown).
	Phase string `json:"phase,omitempty"`
}

// HeartbeatResponse says until when the lease lives now.
type HeartbeatResponse struct {
	Expires time.Time `json:"expires"`
}

// Exit is how pkgrun ended on the worker.
type Exit struct {
	Code    int    `json:"code"`               // exit status when Signal is 0
	Signal  int    `json:"signal,omitempty"`   // the signal that killed it
	SigName string `json:"sig_name,omitempty"` // "KILL"
}

// ResultReport is pkgrun's run as the worker saw it. The server reads it
// as every executor reads its builder (lib/executor/protocol.Interpret):
// the worker forwards, it does not judge.
type ResultReport struct {
	Exit   Exit   `json:"exit"`
	Stdout string `json:"stdout"`           // pkgrun's stdout (at most protocol.MaxStdout bytes)
	Over   bool   `json:"over,omitempty"`   // stdout was longer than that
	Stderr string `json:"stderr,omitempty"` // the tail of pkgrun's stderr (protocol.StderrTail)
}

// ResultResponse says what the server did with a result.
type ResultResponse struct {
	// Promoted lists the staged objects moved into place.
	Promoted []string `json:"promoted,omitempty"`
}

// ObjectInfo is one finished object in an ObjectList.
type ObjectInfo struct {
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

// ObjectList answers GET /v1/list.
type ObjectList struct {
	Objects []ObjectInfo `json:"objects"`
}

// ReleaseRequest gives a lease back at once, unfinished (a spot notice,
// the worker shutting down): the job is requeued without counting a crash
// against the package.
type ReleaseRequest struct {
	Reason string `json:"reason"`
}

// Duration is a time.Duration written as a Go duration string ("5m0s").
type Duration time.Duration

// MarshalJSON writes d as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	if v < 0 {
		return fmt.Errorf("duration %q: negative", s)
	}
	*d = Duration(v)
	return nil
}

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
