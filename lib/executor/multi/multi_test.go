package multi_test

import (
	"fmt"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest/schedcheck"
	"github.com/pkgbulk/pkgbulk/lib/executor/local"
	"github.com/pkgbulk/pkgbulk/lib/executor/multi"
	"github.com/pkgbulk/pkgbulk/lib/job"
)

func TestMain(m *testing.M) { executortest.Main(m) }

// TestSuite runs the conformance suite on local executors joined: one
// slot in the first, the rest in the second.
func TestSuite(t *testing.T) {
	newExec := func(t *testing.T, s job.Settings, slots int) executor.Executor {
		var members []executor.Executor
		for k, n := range []int{1, slots - 1} {
			if n == 0 {
				continue
			}
			e, err := local.New(local.Config{Pkgrun: executortest.FakePkgrun(t), Slots: n, Settings: s, Tag: t.Name(), Name: fmt.Sprintf("local%d", k)})
			if err != nil {
				t.Fatal(err)
			}
			members = append(members, e)
		}
		m, err := multi.New(members...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	executortest.Run(t, newExec)
	t.Run("CrashRequeuedOnce", func(t *testing.T) { schedcheck.Requeue(t, newExec) })
}
