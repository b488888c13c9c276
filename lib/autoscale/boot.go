package autoscale

import "time"

// BootEstimate is the running estimate of how long a builder takes from
// its start to its first contact with the pull server: an exponentially
// weighted mean of the joins measured (each one weighs Weight), seeded
// by the configured boot time, so that the policy's Boot follows what
// the machines really take (a cloud region slower than configured, a
// cached image faster) without one slow join swinging it. With no seed
// the first join is taken as it is.
type BootEstimate struct {
	est time.Duration
	n   int
	// Weight is the share of each new join in the estimate (default 0.3:
	// after five joins the seed weighs less than a fifth).
	Weight float64
}

// NewBootEstimate is an estimate seeded by the configured boot time.
func NewBootEstimate(seed time.Duration) *BootEstimate {
	return &BootEstimate{est: max(seed, 0), Weight: 0.3}
}

// Add counts one measured join and returns the new estimate. A negative
// time (clocks apart) is ignored.
func (b *BootEstimate) Add(took time.Duration) time.Duration {
	if took < 0 {
		return b.est
	}
	w := b.Weight
	if w <= 0 || w > 1 {
		w = 0.3
	}
	if b.n == 0 && b.est == 0 {
		w = 1
	}
	b.est += time.Duration(w * float64(took-b.est))
	b.n++
	return b.est
}

// Value is the estimate now.
func (b *BootEstimate) Value() time.Duration { return b.est }

// N is how many joins were measured.
func (b *BootEstimate) N() int { return b.n }
