// Command pkgrun builds one package in a clean sandbox, the way pbulk's
// pkg-build does, and prints a JSON result. See `pkgrun --help` and
// lib/build.
package main

import (
	"os"

	"github.com/pkgbulk/pkgbulk/lib/build"
	"github.com/pkgbulk/pkgbulk/lib/cli"
)

func main() {
	build.Main() // the sandbox's init and the built-in installer
	os.Exit(cli.Main("pkgrun", build.Description, &build.Tool{}, os.Args[1:], nil))
}
