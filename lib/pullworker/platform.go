package pullworker

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pkgbulk/pkgbulk/lib/pull"
)

// LocalPlatform is this machine as pkgsrc names it: OPSYS from uname's
// sysname, OS_VERSION from its release, MACHINE_ARCH from Go's
// architecture.
func LocalPlatform() pull.Platform {
	var u unix.Utsname
	p := pull.Platform{OpSys: "Linux", Arch: machineArch(runtime.GOARCH)}
	if unix.Uname(&u) == nil {
		p.OpSys = unix.ByteSliceToString(u.Sysname[:])
		p.OSVersion = unix.ByteSliceToString(u.Release[:])
	}
	return p
}

func machineArch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i386"
	case "arm":
		return "earmv7hf"
	}
	return goarch
}

// TreeRevision identifies a pkgsrc tree: the commit of a git checkout,
// the sticky tag or date of a CVS one (CVS/Tag), else "".
func TreeRevision(ctx context.Context, tree string) string {
	if _, err := os.Stat(filepath.Join(tree, ".git")); err == nil {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "git", "-C", tree, "rev-parse", "HEAD")
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.Output(); err == nil {
			return strings.TrimSpace(string(out))
		}
	}
	if b, err := os.ReadFile(filepath.Join(tree, "CVS", "Tag")); err == nil {
		return string(bytes.TrimSpace(b))
	}
	return ""
}
