package schedcmd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimulateElastic runs pkgsched simulate --elastic on a presolve of 40
// independent 10-minute packages and a chain of 10 after them: up to 20
// builders build the wide part, then one builder the chain; the elastic
// pool bills fewer builder-hours than 20 builders kept for the whole
// build, and a tiny budget leaves packages open.
func TestSimulateElastic(t *testing.T) {
	dir := t.TempDir()
	var rec, hist strings.Builder
	hist.WriteString("pkgpath,duration\n")
	for i := range 40 {
		fmt.Fprintf(&rec, "PKGNAME=w%d-1.0\nPKG_LOCATION=cat/w%d\nDEPENDS=\n", i, i)
		fmt.Fprintf(&hist, "cat/w%d,600000\n", i)
	}
	for i := range 10 {
		dep := "w0-1.0"
		if i > 0 {
			dep = fmt.Sprintf("c%d-1.0", i-1)
		}
		fmt.Fprintf(&rec, "PKGNAME=c%d-1.0\nPKG_LOCATION=cat/c%d\nDEPENDS=%s\n", i, i, dep)
		fmt.Fprintf(&hist, "cat/c%d,600000\n", i)
	}
	p, h := filepath.Join(dir, "presolve"), filepath.Join(dir, "hist.csv")
	os.WriteFile(p, []byte(rec.String()), 0o644)
	os.WriteFile(h, []byte(hist.String()), 0o644)
	type result struct {
		Max       int     `json:"max_builders"`
		Jobs      int     `json:"jobs"`
		Left      int     `json:"left"`
		Billed    int64   `json:"builder_ms"`
		Fixed     int64   `json:"fixed_builder_ms"`
		Makespan  int64   `json:"makespan_ms"`
		FixedMS   int64   `json:"fixed_makespan_ms"`
		IdleShare float64 `json:"idle_share"`
	}
	run := func(args ...string) []result {
		t.Helper()
		code, out, errs := runSched(t, append([]string{"simulate", "--presolve", p, "--history", h, "--elastic", "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		var res struct{ Elastic []result }
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Elastic) == 0 {
			t.Fatalf("output %s: %v", out, err)
		}
		return res.Elastic
	}
	rs := run("-W", "5,20", "--boot", "30s")
	if len(rs) != 2 || rs[0].Max != 5 || rs[1].Max != 20 {
		t.Fatalf("results %+v", rs)
	}
	for _, r := range rs {
		if r.Jobs != 50 || r.Left != 0 {
			t.Errorf("max %d: built %d, %d left; want 50, 0", r.Max, r.Jobs, r.Left)
		}
		// The chain leaves all but one builder idle for 90 minutes:
		// stopping them saves most of their time.
		if r.Max == 20 && (r.Billed >= r.Fixed/2 || r.IdleShare > 0.05) {
			t.Errorf("max 20: billed %d ms (fixed pool %d), idle share %.3f", r.Billed, r.Fixed, r.IdleShare)
		}
		if r.Makespan > r.FixedMS+r.FixedMS/10 {
			t.Errorf("max %d: makespan %d, fixed pool %d", r.Max, r.Makespan, r.FixedMS)
		}
	}
	if rs := run("-W", "5", "--budget", "0.5"); rs[0].Left == 0 || rs[0].Jobs == 50 {
		t.Errorf("half a builder-hour built %d and left %d of 50", rs[0].Jobs, rs[0].Left)
	}
	if code, _, errs := runSched(t, "simulate", "--presolve", p, "--elastic", "-W", "4", "--min", "5"); code == 0 || !strings.Contains(errs, "min") {
		t.Errorf("--min 5 -W 4: exit %d, %s", code, errs)
	}
}
