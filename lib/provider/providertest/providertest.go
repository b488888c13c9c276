// Package providertest is the conformance suite every builder provider
// (lib/provider) passes: machines started with their tags and names, found
// again by a provider opened anew (a restarted master), stopped once and
// again, tokens in no process's arguments, and bad requests refused with
// nothing started.
package providertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/provider"
)

// Env is what the suite needs of a provider's test.
type Env struct {
	// New opens a provider on the same state every call: the second is
	// what a restarted master opens.
	New func(t *testing.T) provider.Provider
	// Config is where the machines' workers register.
	Config provider.WorkerConfig
	// Mint makes a one-session token for worker name.
	Mint func(t *testing.T, name string) string
	// Joined lists the workers registered now (nil: not checked).
	Joined func(t *testing.T) []string
	// Boot is how long a machine may take to join (default 2m).
	Boot time.Duration
	// Spot is true when the provider has spot machines.
	Spot bool
}

// Run runs the suite.
func Run(t *testing.T, env Env) {
	if env.Boot <= 0 {
		env.Boot = 2 * time.Minute
	}
	ctx := context.Background()
	run := fmt.Sprintf("providertest-%d-%d", os.Getpid(), time.Now().UnixNano())
	tags := map[string]string{provider.TagRun: run}
	p := env.New(t)
	t.Cleanup(func() {
		// Nothing of the suite may outlive it.
		if l, err := p.List(ctx, tags); err == nil && len(l) > 0 {
			p.Stop(ctx, provider.IDs(l))
		}
		p.Close()
	})

	t.Run("BadRequest", func(t *testing.T) {
		for _, req := range []provider.StartRequest{
			{Workers: []provider.Worker{{Name: "nt"}}, Config: env.Config, Tags: tags},
			{Workers: []provider.Worker{{Name: "nr", Token: "x"}}, Config: env.Config},
		} {
			if got, err := p.Start(ctx, req); err == nil || len(got) > 0 {
				t.Errorf("Start(%v) = %v, %v: want an error and nothing started", req.Workers, got, err)
			}
		}
		if l, err := p.List(ctx, tags); err != nil || len(l) > 0 {
			t.Errorf("List after refused starts = %v, %v", l, err)
		}
	})

	names := []string{"pt-a", "pt-b"}
	var tokens []string
	req := provider.StartRequest{Config: env.Config, Tags: tags, Spot: env.Spot}
	for _, n := range names {
		tok := env.Mint(t, n)
		tokens = append(tokens, tok)
		req.Workers = append(req.Workers, provider.Worker{Name: n, Token: tok})
	}
	got, err := p.Start(ctx, req)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("Start returned %d machines, want 2", len(got))
	}
	for i, in := range got {
		if in.ID == "" || in.Name != names[i] || in.Spot != env.Spot || in.Tags[provider.TagRun] != run ||
			in.Tags[provider.TagWorker] != names[i] || in.Tags[provider.TagSpot] != fmt.Sprint(env.Spot) {
			t.Errorf("machine %d: %+v", i, in)
		}
		if in.State != provider.Pending && in.State != provider.Running {
			t.Errorf("machine %s state %s after Start", in.ID, in.State)
		}
	}

	t.Run("List", func(t *testing.T) {
		l, err := p.List(ctx, tags)
		if err != nil || len(l) != 2 {
			t.Fatalf("List = %v, %v; want the 2 machines", l, err)
		}
		if l, _ := p.List(ctx, map[string]string{provider.TagRun: run + "-other"}); len(l) != 0 {
			t.Errorf("List of another run = %v", l)
		}
		if l, _ := p.List(ctx, map[string]string{provider.TagRun: run, provider.TagWorker: names[1]}); len(l) != 1 || l[0].Name != names[1] {
			t.Errorf("List by worker tag = %v", l)
		}
	})

	if env.Joined != nil {
		t.Run("Join", func(t *testing.T) {
			end := time.Now().Add(env.Boot)
			for {
				j := env.Joined(t)
				if slices.Contains(j, names[0]) && slices.Contains(j, names[1]) {
					return
				}
				if time.Now().After(end) {
					t.Fatalf("joined %v after %s; want %v", j, env.Boot, names)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}

	t.Run("TokenNotInArguments", func(t *testing.T) {
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, f := range procs {
			c, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, tok := range tokens {
				if strings.Contains(string(c), tok) {
					t.Errorf("a token is in the arguments of %s", f)
				}
			}
		}
		for _, f := range []string{fmt.Sprint(req.Workers), fmt.Sprintf("%+v %#v", req, req)} {
			for _, tok := range tokens {
				if strings.Contains(f, tok) {
					t.Error("a formatted request shows a token")
				}
			}
		}
	})

	t.Run("StopFromAnotherMaster", func(t *testing.T) {
		q := env.New(t)
		defer q.Close()
		l, err := q.List(ctx, tags)
		if err != nil || len(l) != 2 {
			t.Fatalf("a new provider lists %v, %v; want the 2 machines", l, err)
		}
		if err := q.Stop(ctx, []string{got[0].ID}); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if err := q.Stop(ctx, []string{got[0].ID, "no-such-machine"}); err != nil {
			t.Errorf("Stop again and of an unknown id: %v", err)
		}
		l, _ = p.List(ctx, tags)
		if len(l) != 1 || l[0].ID != got[1].ID {
			t.Errorf("after stopping %s the first provider lists %v", got[0].ID, l)
		}
	})

	t.Run("StopAll", func(t *testing.T) {
		if err := p.Stop(ctx, provider.IDs(got)); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		end := time.Now().Add(time.Minute)
		for {
			l, err := p.List(ctx, tags)
			if err == nil && len(l) == 0 {
				break
			}
			// A cloud's machines may be stopping for a while.
			if time.Now().After(end) || err != nil || slices.ContainsFunc(l, func(in provider.Instance) bool { return in.State != provider.Stopping }) {
				t.Fatalf("after Stop the provider lists %v, %v", l, err)
			}
			time.Sleep(time.Second)
		}
	})
}
