package report

import (
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/sched"
)

func TestStoredLogs(t *testing.T) {
	withLogs := &job.Result{LogDir: "bulklog/x/"}
	phaseLog := &job.Result{Phases: []job.Phase{{Name: "build", Log: "bulklog/x/build.log"}}}
	found := []Log{{Phase: "build"}}
	tests := []struct {
		name     string
		pkgs     []*Package
		expected int
		missing  []string
	}{
		{name: "none named", pkgs: []*Package{
			{Name: "a", State: sched.Failed, Result: &job.Result{}},
			{Name: "b", State: sched.IndirectFailed},
		}},
		{name: "all found", expected: 2, pkgs: []*Package{
			{Name: "a", State: sched.Failed, Result: withLogs, Logs: found},
			{Name: "b", State: sched.Timeout, Result: phaseLog, Logs: found},
		}},
		{name: "done packages do not count", pkgs: []*Package{
			{Name: "a", State: sched.Done, Result: withLogs},
		}},
		{name: "some missing", expected: 3, missing: []string{"b", "c"}, pkgs: []*Package{
			{Name: "a", State: sched.Failed, Result: withLogs, Logs: found},
			{Name: "b", State: sched.Failed, Result: withLogs},
			{Name: "c", State: sched.Skew, Result: phaseLog},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expected, missing := StoredLogs(&Build{Packages: tt.pkgs})
			var names []string
			for _, p := range missing {
				names = append(names, p.Name)
			}
			if expected != tt.expected || len(names) != len(tt.missing) {
				t.Fatalf("StoredLogs: %d expected, missing %v; want %d, %v", expected, names, tt.expected, tt.missing)
			}
			for i := range names {
				if names[i] != tt.missing[i] {
					t.Errorf("missing %v, want %v", names, tt.missing)
				}
			}
		})
	}
}
