// Command pkgindex builds pkg_summary(5) files from binary packages or from
// the fragments pkgrun stores, and publishes them atomically. See
// `pkgindex --help`, lib/summary and lib/summary/merge.
package main

import (
	"os"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/summary/indexcli"
)

func main() {
	os.Exit(cli.Main("pkgindex", indexcli.Description, &indexcli.Command{}, os.Args[1:], nil))
}
