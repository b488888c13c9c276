package executor

import (
	"errors"
	"testing"
)

func TestRetirement(t *testing.T) {
	r := NewRetirement(2)
	if r.Live() != 2 {
		t.Fatalf("Live = %d, want 2", r.Live())
	}
	r.Retire(&NoSpaceError{Worker: "local/1"})
	select {
	case <-r.Gone():
		t.Fatal("Gone closed with one slot in service")
	default:
	}
	r.Retire(&NoSpaceError{Worker: "local/2"})
	<-r.Gone()
	if r.Live() != 0 {
		t.Fatalf("Live = %d, want 0", r.Live())
	}
	err := r.Err()
	var ns *NoSpaceError
	if !errors.Is(err, ErrNoSpace) || !errors.As(err, &ns) || ns.Worker != "local/2" {
		t.Fatalf("Err = %v, want the last slot's NoSpaceError", err)
	}
}
