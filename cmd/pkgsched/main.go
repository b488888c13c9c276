// Command pkgsched drives a bulk build from pkgdag's build database: it
// schedules packages onto builders (pkgrun), records every state change in
// the database and resumes after a crash. See lib/sched/schedcmd and
// `pkgsched --help`.
package main

import (
	"os"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedcmd"
)

func main() {
	os.Exit(cli.Main("pkgsched", schedcmd.Description, &schedcmd.CLI{}, os.Args[1:], nil))
}
