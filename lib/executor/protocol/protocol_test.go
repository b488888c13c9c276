package protocol

import (
	"errors"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/executor"
)

func TestInterpret(t *testing.T) {
	done := []byte(`{"version":1,"pkgname":"a-1.0","status":"done"}` + "\n")
	failed := []byte(`{"version":1,"pkgname":"a-1.0","status":"failed"}` + "\n")
	tests := []struct {
		name   string
		obs    Observed
		status string
		want   error // nil: a result
		lost   bool
	}{
		{name: "done", obs: Observed{Stdout: done}, status: "done"},
		{name: "failed", obs: Observed{Exit: Exit{Code: 1}, Stdout: failed}, status: "failed"},
		{name: "exit 2", obs: Observed{Exit: Exit{Code: 2}}, want: executor.ErrCrash},
		{name: "exit 3", obs: Observed{Exit: Exit{Code: 3}}, want: executor.ErrNoSpace},
		{name: "signal", obs: Observed{Exit: Exit{Signal: 9, SigName: "KILL"}, Stdout: done}, want: executor.ErrCrash},
		{name: "garbage", obs: Observed{Stdout: []byte("hello")}, want: executor.ErrCrash},
		{name: "nothing", obs: Observed{}, want: executor.ErrCrash},
		{name: "too much", obs: Observed{Stdout: done, Over: true}, want: executor.ErrCrash},
		{name: "contradiction", obs: Observed{Exit: Exit{Code: 1}, Stdout: done}, want: executor.ErrCrash},
		{name: "contradiction 2", obs: Observed{Stdout: failed}, want: executor.ErrCrash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.obs.Worker = "w/1"
			out, err := Interpret(tt.obs)
			if tt.want != nil {
				if !errors.Is(err, tt.want) || out != nil {
					t.Fatalf("got %v, %v; want %v", out, err, tt.want)
				}
				if errors.Is(err, executor.ErrLost) {
					t.Fatalf("%v is not a lost worker", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(out.Result.Status) != tt.status || out.Result.Host != "w/1" {
				t.Fatalf("got %+v", out.Result)
			}
		})
	}
}

func TestBuffers(t *testing.T) {
	l := LimitedBuffer{Max: 4}
	l.Write([]byte("abc"))
	l.Write([]byte("def"))
	if l.String() != "abcd" || !l.Over {
		t.Fatalf("limited: %q %v", l.String(), l.Over)
	}
	tb := TailBuffer{Max: 4}
	tb.Write([]byte("abc"))
	tb.Write([]byte("def"))
	if tb.String() != "cdef" {
		t.Fatalf("tail: %q", tb.String())
	}
}
