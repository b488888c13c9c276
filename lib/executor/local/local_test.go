package local_test

import (
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest/schedcheck"
	"github.com/pkgbulk/pkgbulk/lib/executor/local"
	"github.com/pkgbulk/pkgbulk/lib/job"
)

func TestMain(m *testing.M) { executortest.Main(m) }

func TestSuite(t *testing.T) {
	newExec := func(t *testing.T, s job.Settings, slots int) executor.Executor {
		e, err := local.New(local.Config{Pkgrun: executortest.FakePkgrun(t), Slots: slots, Settings: s, Tag: t.Name()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	executortest.Run(t, newExec)
	t.Run("CrashRequeuedOnce", func(t *testing.T) { schedcheck.Requeue(t, newExec) })
}
