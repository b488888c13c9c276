// Command pkgrun builds one package in a clean sandbox, the way pbulk's
// pkg-build does, and prints a JSON result. See `pkgrun --help` and
// lib/build.
package main

import (
	"os"

	"github.com/pkgbulk/pkgbulk/lib/build"
	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/pullworker"
)

// tool is pkgrun's grammar: lib/build's commands and pkgrun worker (a
// volunteer pull builder, lib/pullworker).
type tool struct {
	build.Tool `embed:""`
	Worker     pullworker.Command `cmd:"" help:"Build jobs of a pull server as a volunteer builder (dials out only)."`
}

func main() {
	build.Main() // the sandbox's init and the built-in installer
	os.Exit(cli.Main("pkgrun", build.Description, &tool{}, os.Args[1:], nil))
}
