// Command pkgdag resolves pbulk scan records into the build database or
// into pbulk-resolve's presolve output. See `pkgdag --help`, lib/dag and
// docs/schema.md.
package main

import (
	"os"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/dag"
)

func main() {
	os.Exit(cli.Main("pkgdag", dag.Description, &dag.Command{}, os.Args[1:], nil))
}
