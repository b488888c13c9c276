package speedup

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// TestFitKnown fits observations made from known models and gets the
// models back.
func TestFitKnown(t *testing.T) {
	for _, c := range []struct {
		name        string
		other       int64 // serial stages
		build1, par int64 // build stage one-job time and its parallel part
		jobs        int
	}{
		{"all serial", 1000, 4000, 0, 4},
		{"half parallel build", 1000, 4000, 2000, 4},
		{"fully parallel build", 0, 8000, 8000, 8},
		{"one job observed", 500, 3000, 1500, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			wall := (c.build1 - c.par) + c.par/int64(c.jobs)
			m := Fit([]Observation{{MakeJobs: c.jobs, OtherWallMS: c.other, BuildWallMS: wall, BuildCPUMS: c.build1}})
			if c.jobs == 1 {
				// One job says nothing about the parallel part.
				if m.ParallelMS != 0 || m.Time(1) != c.other+c.build1 {
					t.Errorf("got %+v", m)
				}
				return
			}
			if m.Time(1) != c.other+c.build1 {
				t.Errorf("one-job time %d, want %d", m.Time(1), c.other+c.build1)
			}
			if d := m.ParallelMS - c.par; d < -2 || d > 2 {
				t.Errorf("parallel part %d, want %d", m.ParallelMS, c.par)
			}
			if got := m.Time(c.jobs); math.Abs(float64(got-(c.other+wall))) > 2 {
				t.Errorf("time with %d jobs %d, want the observed %d", c.jobs, got, c.other+wall)
			}
		})
	}
}

// TestFitBounded: CPU below wall (I/O bound) is no speed-up; CPU above
// jobs × wall (other processes) is at most n.
func TestFitBounded(t *testing.T) {
	if m := Fit([]Observation{{MakeJobs: 4, BuildWallMS: 1000, BuildCPUMS: 300}}); m.ParallelMS != 0 || m.SerialMS != 1000 {
		t.Errorf("I/O bound: %+v", m)
	}
	if m := Fit([]Observation{{MakeJobs: 4, BuildWallMS: 1000, BuildCPUMS: 9000}}); m.SerialMS != 0 || m.ParallelMS != 4000 {
		t.Errorf("over-counted CPU: %+v", m)
	}
}

func TestBest(t *testing.T) {
	for _, c := range []struct {
		m     Model
		limit int
		want  int
	}{
		{Model{SerialMS: 100}, 8, 1},                  // nothing to gain
		{Model{ParallelMS: 1000}, 8, 8},               // all parallel
		{Model{SerialMS: 500, ParallelMS: 500}, 8, 2}, // efficiency 0.67 at 2, 0.5 at 3
		{Model{SerialMS: 100, ParallelMS: 900}, 4, 4},
		{Model{SerialMS: 100, ParallelMS: 900}, 1, 1},
	} {
		if got := c.m.Best(c.limit, 0.5); got != c.want {
			t.Errorf("%+v.Best(%d) = %d, want %d", c.m, c.limit, got, c.want)
		}
	}
}

func TestReadCSVErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"pkgpath,build\n", "no make_jobs column"},
		{"pkgpath,make_jobs,build,cpu:build\na/b,4,x,1\n", "h.csv:2: build \"x\""},
		{"pkgpath,make_jobs,build,cpu:build\n,4,1,1\n", "h.csv:2: empty pkgpath"},
	} {
		_, err := ReadCSV(strings.NewReader(c.in), "h.csv")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.in, err, c.want)
		}
	}
}

// TestRealHistory fits the 71 packages of a real build (bob's mutt run,
// MAKE_JOBS=4): every model reproduces its observed build time with 4
// jobs, and the fractions are spread, not all 0 or 1.
func TestRealHistory(t *testing.T) {
	p := testenv.SharedData(t, "history/bob-history-mutt.csv")
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := ReadCSV(f, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) < 60 {
		t.Fatalf("%d packages", len(h))
	}
	models := h.Models()
	var serial, parallel int
	for path, m := range models {
		o := h[path][0]
		want := o.OtherWallMS + o.BuildWallMS
		if got := m.Time(o.MakeJobs); math.Abs(float64(got-want)) > float64(want)/50+2 {
			t.Errorf("%s: %d ms with %d jobs, observed %d", path, got, o.MakeJobs, want)
		}
		switch f := m.Fraction(); {
		case f < 0.05:
			serial++
		case f > 0.3:
			parallel++
		}
	}
	if serial == 0 || parallel == 0 {
		t.Errorf("fractions not spread: %d nearly serial, %d largely parallel", serial, parallel)
	}
	t.Logf("%d models; median parallel fraction %.2f; %d nearly serial, %d over 0.3", len(models), MedianFraction(models), serial, parallel)
}

func FuzzReadCSV(f *testing.F) {
	f.Add("pkgpath,outcome,make_jobs,build,cpu:build,configure\na/b,success,4,100,300,50\n")
	f.Add("pkgpath,make_jobs,build,cpu:build\na/b,-,-,-\n")
	f.Fuzz(func(t *testing.T, in string) {
		h, err := ReadCSV(strings.NewReader(in), "fuzz")
		if err != nil {
			return
		}
		for _, m := range h.Models() {
			if m.SerialMS < 0 || m.ParallelMS < 0 || m.Time(4) > m.Time(1) {
				t.Fatalf("bad model %+v", m)
			}
		}
	})
}

// TestFitDefault: builds with one job give the one-job time but no
// parallel fraction (the default is used); builds with more jobs give
// their own.
func TestFitDefault(t *testing.T) {
	for _, c := range []struct {
		name   string
		obs    []Observation
		def    float64
		want   Model
		wantOK bool
	}{
		{name: "one job only: default fraction", def: 0.5,
			obs:  []Observation{{MakeJobs: 1, OtherWallMS: 1000, BuildWallMS: 3000, BuildCPUMS: 3000}},
			want: Model{SerialMS: 2000, ParallelMS: 2000}},
		{name: "four jobs, speed-up 2", def: 0.5, wantOK: true,
			// S = 2 with n = 4: build fraction 2/3 of a 2000 ms one-job build stage.
			obs:  []Observation{{MakeJobs: 4, OtherWallMS: 0, BuildWallMS: 1000, BuildCPUMS: 2000}},
			want: Model{SerialMS: 667, ParallelMS: 1333}},
		{name: "four jobs, no speed-up", def: 0.9, wantOK: true,
			obs:  []Observation{{MakeJobs: 4, OtherWallMS: 500, BuildWallMS: 1000, BuildCPUMS: 900}},
			want: Model{SerialMS: 1500, ParallelMS: 0}},
		{name: "mixed: the multi-job build decides the fraction", def: 0.1, wantOK: true,
			obs: []Observation{
				{MakeJobs: 1, OtherWallMS: 0, BuildWallMS: 2000, BuildCPUMS: 2000},
				{MakeJobs: 2, OtherWallMS: 0, BuildWallMS: 1000, BuildCPUMS: 2000},
			},
			want: Model{SerialMS: 0, ParallelMS: 2000}},
		{name: "none", def: 0.5},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := FitDefault(c.obs, c.def); got != c.want {
				t.Errorf("FitDefault = %+v, want %+v", got, c.want)
			}
			if _, ok := ObservedFraction(c.obs); ok != c.wantOK {
				t.Errorf("ObservedFraction ok = %v, want %v", ok, c.wantOK)
			}
		})
	}
}
