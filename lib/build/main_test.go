package build

import (
	"os"
	"testing"
)

// TestMain lets the test binary serve as the sandbox's init and as the
// built-in installer, as pkgrun does.
func TestMain(m *testing.M) {
	Main()
	os.Exit(m.Run())
}
