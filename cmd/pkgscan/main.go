// Command pkgscan scans a pkgsrc tree the way pbulk-scan does: it runs
// "make pbulk-index" in package directories, in parallel, and writes the
// scan records to stdout in pbulk's format and order. See `pkgscan --help`
// and package lib/scanner.
package main

import (
	"os"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/scanner"
)

func main() {
	os.Exit(cli.Main("pkgscan", scanner.Description, &scanner.Command{}, os.Args[1:], nil))
}
