package version

import "github.com/pkgbulk/pkgbulk/lib/cli"

// Cmd is the version subcommand (pkgrun version [--json]).
type Cmd struct {
	JSON bool `name:"json" help:"Print one JSON object: {\"pkgbulk\": release, \"protocol\": job protocol version, \"result\": result version}."`
}

// Run prints Current.
func (c *Cmd) Run(g *cli.Globals) error { return Current().Write(g.Stdout, c.JSON) }
