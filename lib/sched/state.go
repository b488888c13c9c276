package sched

import (
	"fmt"

	"github.com/pkgbulk/pkgbulk/lib/job"
)

// State is a package's build state as stored in build_state.state. The
// strings are pbulk's report strings (spec §3) plus skew and timeout.
type State string

// The states. Skew and timeout are failures of the package itself: they
// propagate to dependents as indirect-failed, like failed.
const (
	Open              State = "open"
	InProcessing      State = "in_processing"
	Done              State = "done"
	Failed            State = "failed"
	Prefailed         State = "prefailed"
	IndirectFailed    State = "indirect-failed"
	IndirectPrefailed State = "indirect-prefailed"
	Skew              State = "skew"
	Timeout           State = "timeout"
)

// States lists every state in report order.
var States = []State{Open, InProcessing, Done, Failed, Prefailed, IndirectFailed, IndirectPrefailed, Skew, Timeout}

// ParseState checks a state string read from the database.
func ParseState(s string) (State, error) {
	for _, st := range States {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown build state %q", s)
}

// Final reports whether st is decided: nothing will change it in this run.
func (st State) Final() bool { return st != Open && st != InProcessing }

// Failure reports whether st stops the package's dependents from being built.
func (st State) Failure() bool { return st.Final() && st != Done }

// indirect returns the state that a failure of kind st gives to the
// package's open dependents: prefailed roots give indirect-prefailed,
// every other failure gives indirect-failed (pbulk's rule; our skew and
// timeout are failed builds).
func (st State) indirect() State {
	switch st {
	case Prefailed, IndirectPrefailed:
		return IndirectPrefailed
	}
	return IndirectFailed
}

// stateOf maps pkgrun's result status to the package's new state and
// detail: up-to-date is pbulk's done with detail "up-to-date".
func stateOf(r *job.Result) (State, string) {
	switch r.Status {
	case job.StatusDone:
		return Done, ""
	case job.StatusUpToDate:
		return Done, "up-to-date"
	case job.StatusSkew:
		return Skew, r.Message
	case job.StatusTimeout:
		return Timeout, r.FailedPhase
	}
	d := r.FailedPhase
	if r.Message != "" {
		if d != "" {
			d += ": "
		}
		d += r.Message
	}
	return Failed, d
}
