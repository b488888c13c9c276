package sshexec_test

import (
	"os"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/executor/executortest"
	"github.com/pkgbulk/pkgbulk/lib/executor/sshexec"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
)

func TestMain(m *testing.M) { executortest.Main(m) }

func newExec(t *testing.T, srv *storetest.SSHServer, s job.Settings, slots int, name string) *sshexec.Executor {
	t.Helper()
	e, err := sshexec.New(sshexec.Config{
		Host:         sshexec.Host{Name: name, User: srv.User, Host: srv.Host, Port: srv.Port, Slots: slots, Pkgrun: executortest.FakePkgrun(t)},
		Settings:     s,
		IdentityFile: srv.IdentityFile,
		KnownHosts:   srv.KnownHosts,
		Tag:          t.Name(),
		Grace:        2 * time.Second,
		KeepAlive:    200 * time.Millisecond,
		Deadline:     2 * time.Second,
		BackoffMin:   100 * time.Millisecond,
		BackoffMax:   time.Second,
		GiveUp:       3,
		Log:          os.Stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestSuite runs the conformance suite over a real sshd on loopback.
func TestSuite(t *testing.T) {
	srv := storetest.StartSSHD(t)
	executortest.Run(t, func(t *testing.T, s job.Settings, slots int) executor.Executor {
		return newExec(t, srv, s, slots, "")
	})
}
