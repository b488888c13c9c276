// Package provider is the boundary between the autoscaler (lib/autoscale)
// and whatever starts builder machines: local processes
// (lib/provider/process), qemu VMs on the master's machine
// (lib/provider/qemu) or cloud instances (lib/provider/ec2).
//
// A provider starts machines that boot straight into `pkgrun worker`: each
// one dials the pull server at WorkerConfig.ServerURL, pins its TLS
// certificate by WorkerConfig.Fingerprint and registers with its own
// one-session token. The provider never sees anything else of the build.
//
// # Contract
//
//   - Start starts len(req.Workers) machines, one per Worker, and returns
//     them (State Pending or Running). The token of each Worker reaches
//     only its machine, by a channel that does not show it to other users
//     of either machine (a file of mode 0600, fw_cfg, user-data): never a
//     process argument, an environment variable of the provider's own
//     process, a log line or an error message. When only some machines
//     started, Start returns those and an error; the caller stops them.
//     An error that is only the cloud's lack of machines for the request
//     (not a bad request, not a fault) wraps ErrNoCapacity.
//   - Every machine carries req.Tags plus TagWorker = its Worker.Name and
//     TagSpot, so that List finds it again after the master that started
//     it died (TagRun names the run: the database's path).
//   - List returns the machines that carry every tag in tags and are not
//     terminated (Pending, Running or Stopping), the ones started by an
//     earlier master too.
//   - Stop terminates the machines ids (nothing of them keeps running or
//     billing once it returned nil, or soon after for a cloud instance:
//     they are Stopping). Ids that are unknown or already gone are not an
//     error, so Stop may be repeated.
//   - Close releases the provider's own resources; it does not stop the
//     machines (the caller does, with Stop, so that it can report them).
//
// Providers are opened from a spec by lib/provider/provideropen and tested
// by one conformance suite, lib/provider/providertest.
package provider

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Tags every machine carries.
const (
	// TagRun names the run that started the machine (the database).
	TagRun = "pkgbulk-run"
	// TagWorker is the worker name the machine's token was minted for.
	TagWorker = "pkgbulk-worker"
	// TagSpot is "true" on spot (preemptible) machines, "false" on
	// on-demand ones.
	TagSpot = "pkgbulk-spot"
)

// State is a machine's life-cycle state.
type State string

// The states a provider reports.
const (
	Pending    State = "pending"    // starting: not yet running its worker
	Running    State = "running"    // booted
	Stopping   State = "stopping"   // Stop was called or the cloud took it back
	Terminated State = "terminated" // gone; List does not report it
)

// Instance is one builder machine.
type Instance struct {
	ID      string // the provider's id: a pid, a VM name, i-0123...
	Name    string // the worker name (its TagWorker)
	State   State
	Spot    bool
	Started time.Time
	Tags    map[string]string
}

// WorkerConfig is what every worker of a Start is told.
type WorkerConfig struct {
	// ServerURL is the pull server's URL as the machine reaches it
	// (a qemu guest reaches the host through its user network, e.g.
	// https://10.0.2.2:8443; the provider may rewrite a loopback host
	// to its guest-side address).
	ServerURL string
	// Fingerprint pins the server's certificate: "sha256:" and the hex
	// SHA-256 of its DER (empty: the system roots verify it).
	Fingerprint string
	// Labels are passed to the worker (pkgrun worker --label k=v) and
	// registered with the server, e.g. capacity=spot.
	Labels map[string]string
}

// Worker is one machine to start: its worker name and its one-session
// token, minted for that name by the pull server.
type Worker struct {
	Name  string
	Token string
}

// String never shows the token.
func (w Worker) String() string { return w.Name }

// GoString never shows the token.
func (w Worker) GoString() string { return fmt.Sprintf("provider.Worker{Name: %q}", w.Name) }

// StartRequest asks for one machine per Worker.
type StartRequest struct {
	Workers []Worker
	Config  WorkerConfig
	Spot    bool              // preemptible machines (where the provider has them)
	Tags    map[string]string // at least TagRun
}

// Provider starts, lists and stops builder machines.
type Provider interface {
	// Name is the provider's kind and place, e.g. "process", "qemu",
	// "ec2:eu-west-1".
	Name() string
	Start(ctx context.Context, req StartRequest) ([]Instance, error)
	List(ctx context.Context, tags map[string]string) ([]Instance, error)
	Stop(ctx context.Context, ids []string) error
	Close() error
}

// ErrNoCapacity is wrapped (errors.Is) by Start's error when the provider
// has no machines for the request now: a cloud out of capacity for the
// instance type or its spot pool, a spot price too low, the spot
// instance quota reached. The request was sound: later, or on-demand
// instead of spot, it may succeed (the autoscaler falls back to
// on-demand builders and tries spot again after a while).
var ErrNoCapacity = errors.New("no capacity for the machines asked for")

// Check reports what is wrong with a request before a provider starts
// anything: no workers, a worker without a name or a token, a name given
// twice, no TagRun.
func (r StartRequest) Check() error {
	if len(r.Workers) == 0 {
		return errors.New("start: no workers")
	}
	if r.Tags[TagRun] == "" {
		return fmt.Errorf("start: no %s tag", TagRun)
	}
	if r.Config.ServerURL == "" {
		return errors.New("start: no server URL")
	}
	seen := map[string]bool{}
	for i, w := range r.Workers {
		switch {
		case w.Name == "":
			return fmt.Errorf("start: worker %d has no name", i+1)
		case w.Token == "":
			return fmt.Errorf("start: worker %s has no token", w.Name)
		case seen[w.Name]:
			return fmt.Errorf("start: worker %s is given twice", w.Name)
		case strings.ContainsAny(w.Name, " \t\n/"):
			return fmt.Errorf("start: worker name %q has a space or a slash", w.Name)
		}
		seen[w.Name] = true
	}
	return nil
}

// MachineTags are the tags of the machine started for w: the request's
// tags, TagWorker and TagSpot.
func (r StartRequest) MachineTags(w Worker) map[string]string {
	t := make(map[string]string, len(r.Tags)+2)
	for k, v := range r.Tags {
		t[k] = v
	}
	t[TagWorker] = w.Name
	t[TagSpot] = fmt.Sprint(r.Spot)
	return t
}

// Matches reports whether have carries every tag of want.
func Matches(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// IDs are the ids of is, in order.
func IDs(is []Instance) []string {
	ids := make([]string, len(is))
	for i, in := range is {
		ids[i] = in.ID
	}
	return ids
}

// LabelArgs are labels as sorted k=v strings (for a worker's --label
// flags or a kernel command line).
func LabelArgs(labels map[string]string) []string {
	out := make([]string, 0, len(labels))
	for k, v := range labels {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
