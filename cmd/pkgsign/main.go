// Command pkgsign signs binary packages in pkg_install's signed-package
// format (GnuPG or X.509) as a separate, re-runnable step, and verifies
// them as pkg_add would. See `pkgsign --help`, lib/sign and docs/signing.md.
package main

import (
	"os"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/sign/signcli"
)

func main() {
	os.Exit(cli.Main("pkgsign", signcli.Description, &signcli.Command{}, os.Args[1:], nil))
}
