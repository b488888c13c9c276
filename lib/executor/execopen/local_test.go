package execopen

import (
	"runtime"
	"strings"
	"testing"
)

func TestParseLocal(t *testing.T) {
	cpus := runtime.NumCPU()
	for _, c := range []struct {
		spec string
		over float64
		want Local
		err  string
	}{
		{spec: "local", want: Local{Slots: cpus}},
		{spec: "local:3", want: Local{Slots: 3}},
		{spec: "local:3", over: 1.5, want: Local{Slots: 3, Oversubscribe: 1.5}},
		{spec: "local:2?cores=2", want: Local{Slots: 2, Cores: 2}},
		{spec: "local?cores=16", want: Local{Slots: cpus, Cores: 16}},
		{spec: "local:8?cores=4&oversubscribe=2", over: 1.5, want: Local{Slots: 8, Cores: 4, Oversubscribe: 2}},
		{spec: "local:0", err: "at least 1"},
		{spec: "local:", err: "at least 1"},
		{spec: "local:x", err: "at least 1"},
		{spec: "localhost", err: "want local"},
		{spec: "local:2?cores=0", err: "cores="},
		{spec: "local:2?cores=two", err: "cores="},
		{spec: "local:2?oversubscribe=0.5", err: "oversubscribe="},
		{spec: "local:2?oversubscribe=NaN", err: "oversubscribe="},
		{spec: "local:2?oversubscribe=Inf", err: "oversubscribe="},
		{spec: "local:2?slots=3", err: `unknown setting "slots"`},
		{spec: "local:2?cores=%zz", err: "invalid URL escape"},
	} {
		got, err := ParseLocal(c.spec, c.over)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), c.spec) {
				t.Errorf("%s: error %v, want one naming the spec and %q", c.spec, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.spec, got, err, c.want)
		}
	}
}

func FuzzParseLocal(f *testing.F) {
	for _, s := range []string{"local", "local:4", "local:2?cores=2&oversubscribe=1.5", "local?cores=1", "local:x?y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		l, err := ParseLocal(spec, 1)
		if err != nil {
			return
		}
		if l.Slots < 1 || l.Cores < 0 || !(l.Oversubscribe >= 1) {
			t.Fatalf("%q: accepted %+v", spec, l)
		}
	})
}
