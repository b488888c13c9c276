// Package version says which pkgbulk release a program is and which job
// protocol (lib/job) its pkgrun speaks, as `pkgrun version [--json]`
// prints it, and checks a builder's answer against the scheduler's own:
// an executor runs `PKGRUN version --json` on a builder before it hands
// it a job, and takes the builder out when pkgrun is missing or speaks
// another protocol (Check wraps ErrIncompatible), instead of letting every
// job crash on it.
package version

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/job"
)

// Release is the pkgbulk release, set when linking:
//
//	go build -ldflags "-X github.com/pkgbulk/pkgbulk/lib/version.Release=v1.2.0" ./cmd/...
//
// When it is empty, the module version and VCS revision Go recorded in
// the binary are used (see Pkgbulk).
var Release string

// Info is what `pkgrun version --json` prints.
type Info struct {
	Pkgbulk  string `json:"pkgbulk"`  // the release, e.g. v1.2.0 or devel+0123abcd4567
	Protocol int    `json:"protocol"` // job.ProtocolVersion
	Result   int    `json:"result"`   // job.ResultVersion
}

// Current is this program's Info.
func Current() Info {
	return Info{Pkgbulk: Pkgbulk(), Protocol: job.ProtocolVersion, Result: job.ResultVersion}
}

// Pkgbulk is the release: Release when set at link time, else the main
// module's version from the build information, with the VCS revision
// (and "-dirty" for a modified tree) for development builds.
func Pkgbulk() string {
	if Release != "" {
		return Release
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return "devel+" + rev[:min(len(rev), 12)] + dirty
}

// String is the text form of `pkgrun version`.
func (i Info) String() string {
	return fmt.Sprintf("pkgbulk %s (job protocol %d, result version %d)", i.Pkgbulk, i.Protocol, i.Result)
}

// Write prints i as one JSON line (jsonOut) or as text.
func (i Info) Write(w io.Writer, jsonOut bool) error {
	if !jsonOut {
		_, err := fmt.Fprintln(w, i.String())
		return err
	}
	b, err := json.Marshal(i)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Parse reads `pkgrun version --json` output: one Info object with a
// positive protocol version and nothing after it.
func Parse(b []byte) (Info, error) {
	var i Info
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&i); err != nil {
		return i, fmt.Errorf("parse pkgrun version: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return i, errors.New("parse pkgrun version: trailing data after the version object")
	}
	if i.Protocol < 1 {
		return i, fmt.Errorf("parse pkgrun version: no job protocol version in %s", clip(b))
	}
	return i, nil
}

// ErrIncompatible is wrapped by Remote's errors: the builder cannot run
// this scheduler's jobs until its pkgrun is replaced, so retrying is
// pointless.
var ErrIncompatible = errors.New("incompatible builder")

// MismatchError is a builder whose pkgrun speaks another job protocol.
type MismatchError struct {
	Where  string // the builder, e.g. ssh:host1
	Pkgrun string // pkgrun's path there
	Theirs Info
	Ours   Info
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s: %s speaks job protocol %d (pkgbulk %s), this scheduler speaks %d (pkgbulk %s): install the same pkgbulk release there",
		e.Where, e.Pkgrun, e.Theirs.Protocol, e.Theirs.Pkgbulk, e.Ours.Protocol, e.Ours.Pkgbulk)
}

// Is makes errors.Is(err, ErrIncompatible) true.
func (e *MismatchError) Is(target error) bool { return target == ErrIncompatible }

// Command is the command that asks a builder (a POSIX shell command
// line, pkgrun quoted).
func Command(pkgrun string) string {
	return "'" + strings.ReplaceAll(pkgrun, "'", `'\''`) + "' version --json"
}

// Remote reads what Command(pkgrun) did on the builder where (its exit
// status, stdout and the tail of stderr) and checks it against Current:
// pkgrun missing (exit 127) or not executable (126), a pkgrun without the
// version command (an older protocol), an answer that does not parse,
// and another protocol version are errors wrapping ErrIncompatible. It
// returns the builder's Info when it matches.
func Remote(where, pkgrun string, exit int, stdout []byte, stderr string) (Info, error) {
	ours := Current()
	bad := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		if s := lastLine(stderr); s != "" {
			msg += " (stderr: " + s + ")"
		}
		return fmt.Errorf("%s: %s; this scheduler is pkgbulk %s, job protocol %d: install the same pkgbulk release there: %w",
			where, msg, ours.Pkgbulk, ours.Protocol, ErrIncompatible)
	}
	switch {
	case exit == 127:
		return Info{}, bad("no pkgrun at %s", pkgrun)
	case exit == 126:
		return Info{}, bad("%s is not executable", pkgrun)
	case exit != 0:
		return Info{}, bad("%s version --json failed with exit status %d: not pkgrun, or one older than job protocol 1", pkgrun, exit)
	}
	theirs, err := Parse(stdout)
	if err != nil {
		return Info{}, bad("%s version --json: %v", pkgrun, err)
	}
	if theirs.Protocol != ours.Protocol {
		return theirs, &MismatchError{Where: where, Pkgrun: pkgrun, Theirs: theirs, Ours: ours}
	}
	return theirs, nil
}

func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return fmt.Sprintf("%q", s)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
