// Package speedup models how a package's build time falls with the
// MAKE_JOBS it is given, from the build history, so the scheduler can give
// the jobs on the critical path many cores and the others one.
//
// The model is Amdahl's, per package: T(n) = Serial + Parallel/n. Serial
// is every stage but build (checksum, configure, install, package, ... are
// make targets that pkgsrc runs without -j) plus the serial share of the
// build stage; Parallel is the rest of the build stage. One observation of
// the build stage with n jobs, wall W and CPU C (user+system of the
// stage's processes, as pkgrun and bob record it), gives its speed-up
// S = C/W (bounded to [1, n]: CPU time is the one-core time of CPU-bound
// work) and from S = 1/((1-f) + f/n) the parallel fraction f =
// (1 - 1/S)/(1 - 1/n). Several observations are combined by their median
// fraction and median one-core time. A package with MAKE_JOBS_SAFE=no has
// f = 0; one without history gets the fleet's median fraction applied to
// its estimated duration.
package speedup

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Model is one package's build time as a function of its MAKE_JOBS.
type Model struct {
	SerialMS   int64 // never faster with more jobs
	ParallelMS int64 // divided by the number of jobs
}

// Time is the wall time with n jobs (n < 1 counts as 1).
func (m Model) Time(n int) int64 {
	if n < 1 {
		n = 1
	}
	return m.SerialMS + (m.ParallelMS+int64(n)-1)/int64(n)
}

// Fraction is the parallel share of the one-job time.
func (m Model) Fraction() float64 {
	if t := m.SerialMS + m.ParallelMS; t > 0 {
		return float64(m.ParallelMS) / float64(t)
	}
	return 0
}

// FromFraction is the model of a build that takes oneJob ms with one job
// and whose parallel share is f (clamped to [0, 1]).
func FromFraction(oneJob int64, f float64) Model {
	f = math.Max(0, math.Min(1, f))
	p := int64(math.Round(float64(oneJob) * f))
	return Model{SerialMS: oneJob - p, ParallelMS: p}
}

// Best is the number of jobs, at most limit, that a build should get: the
// largest n whose efficiency (speed-up per job) stays above minEff, so
// that cores are given where they shorten the build and not wasted on its
// serial part.
func (m Model) Best(limit int, minEff float64) int {
	best := 1
	t1 := float64(m.Time(1))
	for n := 2; n <= limit; n++ {
		if s := t1 / float64(m.Time(n)); s/float64(n) > minEff {
			best = n
		}
	}
	return best
}

// Observation is one build of a package: the MAKE_JOBS it had, its other
// stages' wall time, and the build stage's wall and CPU time.
type Observation struct {
	MakeJobs    int
	OtherWallMS int64
	BuildWallMS int64
	BuildCPUMS  int64
}

// fit is one observation's fraction and one-job time.
func (o Observation) fit() (f float64, oneJob int64) {
	n := max(o.MakeJobs, 1)
	if o.BuildWallMS <= 0 {
		return 0, o.OtherWallMS
	}
	s := float64(o.BuildCPUMS) / float64(o.BuildWallMS)
	s = math.Max(1, math.Min(float64(n), s))
	buildOne := float64(o.BuildWallMS) * s
	if n > 1 {
		// The build stage's share of the one-job time, then of the whole.
		fb := (1 - 1/s) / (1 - 1/float64(n))
		total := float64(o.OtherWallMS) + buildOne
		return fb * buildOne / total, int64(math.Round(total))
	}
	return 0, o.OtherWallMS + int64(buildOne)
}

// Fit is the model of a package from its observations (at least one).
func Fit(obs []Observation) Model {
	var fs []float64
	var ts []int64
	for _, o := range obs {
		f, t := o.fit()
		fs = append(fs, f)
		ts = append(ts, t)
	}
	slices.Sort(fs)
	slices.Sort(ts)
	return FromFraction(ts[len(ts)/2], fs[len(fs)/2])
}

// ObservedFraction is the median parallel fraction of the observations
// made with more than one job; ok is false when there is none (a build
// with one job shows its time, not how it would scale).
func ObservedFraction(obs []Observation) (f float64, ok bool) {
	var fs []float64
	for _, o := range obs {
		if o.MakeJobs > 1 && o.BuildWallMS > 0 {
			f, _ := o.fit()
			fs = append(fs, f)
		}
	}
	if len(fs) == 0 {
		return 0, false
	}
	slices.Sort(fs)
	return fs[len(fs)/2], true
}

// FitDefault is Fit for observations that may all have been made with
// one job: their median one-job time with the parallel fraction of the
// multi-job ones, else def (the fleet's default fraction).
func FitDefault(obs []Observation, def float64) Model {
	var ts []int64
	for _, o := range obs {
		_, t := o.fit()
		ts = append(ts, t)
	}
	if len(ts) == 0 {
		return Model{}
	}
	slices.Sort(ts)
	f, ok := ObservedFraction(obs)
	if !ok {
		f = def
	}
	return FromFraction(ts[len(ts)/2], f)
}

// History is what a history file says per pkgpath.
type History map[string][]Observation

// Models fits every pkgpath of h.
func (h History) Models() map[string]Model {
	out := make(map[string]Model, len(h))
	for p, obs := range h {
		out[p] = Fit(obs)
	}
	return out
}

// MedianFraction is the median parallel fraction over the models (0.5
// when there are none): what a package without history is assumed to have.
func MedianFraction(models map[string]Model) float64 {
	var fs []float64
	for _, m := range models {
		fs = append(fs, m.Fraction())
	}
	if len(fs) == 0 {
		return 0.5
	}
	slices.Sort(fs)
	return fs[len(fs)/2]
}

// stages are the pkg-build stages other than build, as history columns.
var stages = []string{"pre-clean", "depends", "checksum", "configure", "install", "package", "deinstall", "clean"}

// ReadCSV reads a history CSV in bob's format (the columns pkgpath,
// outcome, make_jobs, the stage names with their wall ms and
// "cpu:<stage>" with their CPU ms; "-" is an unknown value): successful
// builds only. An error names the file and line.
func ReadCSV(r io.Reader, name string) (History, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: read header: %w", name, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimSpace(h)] = i
	}
	for _, need := range []string{"pkgpath", "make_jobs", "build", "cpu:build"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("%s:1: no %s column", name, need)
		}
	}
	h := History{}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return h, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		get := func(c string) (int64, bool, error) {
			i, ok := col[c]
			if !ok || i >= len(rec) || rec[i] == "-" || rec[i] == "" {
				return 0, false, nil
			}
			v, err := strconv.ParseInt(rec[i], 10, 64)
			if err != nil || v < 0 {
				return 0, false, fmt.Errorf("%s:%d: %s %q is not a number of ms", name, line, c, rec[i])
			}
			return v, true, nil
		}
		if i, ok := col["outcome"]; ok && i < len(rec) && rec[i] != "success" {
			continue
		}
		jobs, ok, err := get("make_jobs")
		if err != nil {
			return nil, err
		}
		if !ok || jobs < 1 {
			jobs = 1
		}
		o := Observation{MakeJobs: int(jobs)}
		if o.BuildWallMS, _, err = get("build"); err != nil {
			return nil, err
		}
		if o.BuildCPUMS, _, err = get("cpu:build"); err != nil {
			return nil, err
		}
		for _, s := range stages {
			v, _, err := get(s)
			if err != nil {
				return nil, err
			}
			o.OtherWallMS += v
		}
		p := ""
		if i := col["pkgpath"]; i < len(rec) {
			p = rec[i]
		}
		if p == "" {
			return nil, fmt.Errorf("%s:%d: empty pkgpath", name, line)
		}
		h[p] = append(h[p], o)
	}
}
