package schedcmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimulateCores runs pkgsched simulate --cores-per-builder on a small
// presolve with a long parallel chain: the policy beats one core per job
// and never grants more than a builder's cores.
func TestSimulateCores(t *testing.T) {
	dir := t.TempDir()
	var rec, hist strings.Builder
	hist.WriteString("pkgpath,pkgname,outcome,make_jobs,duration,build,cpu:build,configure\n")
	for i := range 6 {
		dep := ""
		if i > 0 {
			dep = "c" + string(rune('0'+i-1)) + "-1.0"
		}
		rec.WriteString("PKGNAME=c" + string(rune('0'+i)) + "-1.0\nPKG_LOCATION=cat/c" + string(rune('0'+i)) + "\nDEPENDS=" + dep + "\n")
		// Built with 4 jobs in 100 s of build stage and 360 s of CPU.
		hist.WriteString("cat/c" + string(rune('0'+i)) + ",c-1.0,success,4,101000,100000,360000,1000\n")
	}
	p, h := filepath.Join(dir, "presolve"), filepath.Join(dir, "hist.csv")
	os.WriteFile(p, []byte(rec.String()), 0o644)
	os.WriteFile(h, []byte(hist.String()), 0o644)
	code, out, errs := runSched(t, "simulate", "--presolve", p, "--history", h, "-W", "2", "--cores-per-builder", "4", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		Cores []struct {
			OneCorePerJob bool  `json:"one_core_per_job"`
			MakespanMS    int64 `json:"makespan_ms"`
			MaxGranted    int   `json:"max_granted"`
			PeakUsed      int   `json:"peak_cores_used"`
		} `json:"cores"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Cores) != 2 {
		t.Fatalf("output %s: %v", out, err)
	}
	pol, base := res.Cores[0], res.Cores[1]
	if pol.OneCorePerJob || !base.OneCorePerJob || pol.MakespanMS >= base.MakespanMS || pol.MaxGranted != 4 || pol.PeakUsed > 4 {
		t.Errorf("policy %+v, one core per job %+v", pol, base)
	}
}
