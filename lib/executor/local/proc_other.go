//go:build !linux

package local

import (
	"errors"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// KillOrphans finds nothing on systems without /proc environments: after a
// kill -9 of pkgsched, kill leftover pkgrun process groups by hand.
func KillOrphans(tag string) (int, error) { return 0, nil }

// inUse cannot tell which processes use a directory without /proc: stale
// job directories are left alone.
func inUse() (*usage, error) {
	return nil, errors.New("not supported on this system")
}
