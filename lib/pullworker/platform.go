package pullworker

import (
	"runtime"

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
