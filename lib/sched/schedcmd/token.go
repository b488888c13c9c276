package schedcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/pull"
)

// TokenCmd is pkgsched token: registration tokens of pull workers.
type TokenCmd struct {
	Add    TokenAddCmd    `cmd:"" help:"Make a registration token for a pull worker and print it (once)."`
	Revoke TokenRevokeCmd `cmd:"" help:"Revoke a worker's token: its session ends and its job is requeued."`
	List   TokenListCmd   `cmd:"" help:"List the tokens (never the tokens themselves)."`
}

// Help is token's long help.
func (c *TokenCmd) Help() string {
	return `Volunteer builders (pkgrun worker) join a run of 'pkgsched run --executor
pull://ADDR' with a registration token. 'token add NAME' prints a new
token on stdout, once: the database keeps only its SHA-256. Write it to a
file for the worker (pkgrun worker --token-file F); never pass it as an
argument. 'token revoke NAME' works while pkgsched run is building: the
worker's session ends within a second or at its next heartbeat and its job
is requeued.

Exit codes: 0 done; 2 bad usage, an unknown or existing name, a database
that cannot be opened.`
}

// TokenAddCmd is pkgsched token add.
type TokenAddCmd struct {
	DB         string `name:"db" required:"" type:"existingfile" placeholder:"FILE" help:"Build database."`
	Name       string `arg:"" help:"The worker's name (letters, digits, '.', '_', '-'); it is pull:NAME in status and reports."`
	Labels     string `placeholder:"K=V,..." help:"Labels of the worker, e.g. os=netbsd,arch=x86_64,big=yes (they win over the worker's own)."`
	OneSession bool   `help:"The token opens one session only (a machine started for one build)."`
	JSON       bool   `name:"json" help:"Print {\"name\": ..., \"token\": ...} instead of the token alone."`
}

// Run makes the token.
func (c *TokenAddCmd) Run(ctx context.Context, g *cli.Globals) error {
	labels, err := pull.ParseLabels(c.Labels)
	if err != nil {
		return fmt.Errorf("--labels: %w", err)
	}
	d, err := db.Open(ctx, c.DB)
	if err != nil {
		return err
	}
	defer d.Close()
	tok, err := pull.AddToken(ctx, d, c.Name, labels, c.OneSession)
	if err != nil {
		return err
	}
	if c.JSON {
		return json.NewEncoder(g.Stdout).Encode(map[string]string{"name": c.Name, "token": tok})
	}
	_, err = fmt.Fprintln(g.Stdout, tok)
	return err
}

// TokenRevokeCmd is pkgsched token revoke.
type TokenRevokeCmd struct {
	DB   string `name:"db" required:"" type:"existingfile" placeholder:"FILE" help:"Build database."`
	Name string `arg:"" help:"The worker's name."`
}

// Run revokes the token.
func (c *TokenRevokeCmd) Run(ctx context.Context, g *cli.Globals) error {
	d, err := db.Open(ctx, c.DB)
	if err != nil {
		return err
	}
	defer d.Close()
	return pull.RevokeToken(ctx, d, c.Name)
}

// TokenListCmd is pkgsched token list.
type TokenListCmd struct {
	DB   string `name:"db" required:"" type:"existingfile" placeholder:"FILE" help:"Build database."`
	JSON bool   `name:"json" help:"Print the tokens as JSON."`
}

// Run lists the tokens.
func (c *TokenListCmd) Run(ctx context.Context, g *cli.Globals) error {
	d, err := db.OpenReadOnly(ctx, c.DB)
	if err != nil {
		return err
	}
	defer d.Close()
	toks, err := pull.ListTokens(ctx, d)
	if err != nil {
		return err
	}
	if c.JSON {
		if toks == nil {
			toks = []pull.TokenInfo{}
		}
		b, err := json.MarshalIndent(toks, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(g.Stdout, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tLABELS\tSESSIONS\tCREATED\tSTATE")
	for _, t := range toks {
		state := "valid"
		if t.Revoked != nil {
			state = "revoked " + t.Revoked.Format(time.RFC3339)
		} else if t.OneSession && t.Sessions > 0 {
			state = "used (one session)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", t.Name, pull.FormatLabels(t.Labels), t.Sessions, t.Created.Format(time.RFC3339), state)
	}
	return tw.Flush()
}
