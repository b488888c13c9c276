// Command pkgrun builds one package in a clean sandbox, the way pbulk's
// pkg-build does, and prints a JSON result. See `pkgrun --help` and
// lib/build.
package main

import (
	"os"

	"github.com/pkgbulk/pkgbulk/lib/build"
	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/imds"
	"github.com/pkgbulk/pkgbulk/lib/pullworker"
)

// tool is pkgrun's grammar: lib/build's commands, pkgrun worker (a
// volunteer pull builder, lib/pullworker) and pkgrun user-data (what the
// worker image's /init reads on EC2, lib/imds).
type tool struct {
	build.Tool `embed:""`
	Worker     pullworker.Command   `cmd:"" help:"Build jobs of a pull server as a volunteer builder (dials out only)."`
	UserData   imds.UserDataCommand `cmd:"" name:"user-data" help:"Print this EC2 instance's user data (IMDSv2)."`
}

func main() {
	build.Main() // the sandbox's init and the built-in installer
	os.Exit(cli.Main("pkgrun", build.Description, &tool{}, os.Args[1:], nil))
}
