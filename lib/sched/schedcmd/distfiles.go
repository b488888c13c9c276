package schedcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/distfile"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
)

// DistCmd is pkgsched distfiles.
type DistCmd struct {
	DB      string `name:"db" required:"" type:"existingfile" placeholder:"FILE" help:"Build database."`
	Pkgsrc  string `required:"" type:"existingdir" placeholder:"DIR" help:"pkgsrc tree the database was scanned from (its distinfo files are read)."`
	Store   string `placeholder:"URL" help:"Package store (file://, sftp://, s3://): say which distfiles its distfiles/ lacks."`
	Missing bool   `help:"List only the distfiles that are not in the store (needs --store)."`
	JSON    bool   `name:"json" help:"Print a JSON array."`

	Access job.StoreAccess `embed:"" group:"Store access"`
}

// Help is pkgsched distfiles' long help.
func (c *DistCmd) Help() string {
	return `Lists the distfiles the build needs: every file named in the distinfo
of each selected package that is not prefailed, by its name relative to
DISTDIR (DIST_SUBDIR included, as in distinfo and in the store's
distfiles/). distinfo lists every distfile a package may use, so this is a
superset of what the build fetches (options, platforms). No make runs.

With --store, each distfile's status says whether distfiles/<name> is in
the store: present (right size), missing, wrong-size (a builder will
delete it and fetch again); conflict means that packages' distinfo files
disagree about the file. Pre-fetch the missing ones into the store's
distfiles/ (any verified copy will do: builders verify what they take),
or let the first builder that needs one fetch it once for all.

Output: one line per distfile, "STATUS NAME SIZE PACKAGES" (STATUS is
"-" without --store), or with --json an array of {name, size, packages,
status, digests}.

Exit codes: 0 listed, 2 bad usage, an unreadable database, distinfo file
or store.`
}

// Run lists.
func (c *DistCmd) Run(ctx context.Context, g *cli.Globals) error {
	if c.Missing && c.Store == "" {
		return errors.New("--missing needs --store")
	}
	d, err := db.OpenReadOnly(ctx, c.DB)
	if err != nil {
		return err
	}
	defer d.Close()
	rows, err := d.QueryContext(ctx, `SELECT pkgname, pkgpath FROM packages WHERE selected = 1 AND initial_state = 'open' ORDER BY pkgname`)
	if err != nil {
		return fmt.Errorf("%s: %w", c.DB, err)
	}
	var pkgs []distfile.Package
	for rows.Next() {
		var p distfile.Package
		if err := rows.Scan(&p.Name, &p.Location); err != nil {
			rows.Close()
			return fmt.Errorf("%s: %w", c.DB, err)
		}
		pkgs = append(pkgs, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", c.DB, err)
	}
	var st store.Store
	if c.Store != "" {
		if st, err = storeopen.Open(ctx, c.Store, storeopen.Options{StoreAccess: c.Access}); err != nil {
			return err
		}
		defer st.Close()
	}
	list, err := distfile.List(ctx, c.Pkgsrc, pkgs, st)
	if err != nil {
		return err
	}
	if c.Missing {
		out := list[:0]
		for _, n := range list {
			if n.Status != "present" {
				out = append(out, n)
			}
		}
		list = out
	}
	if c.JSON {
		if list == nil {
			list = []distfile.Needed{}
		}
		b, err := json.MarshalIndent(list, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(g.Stdout, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 0, 2, ' ', 0)
	for _, n := range list {
		status := n.Status
		if status == "" {
			status = "-"
		}
		size := "-"
		if n.Size >= 0 {
			size = fmt.Sprint(n.Size)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", status, n.Name, size, strings.Join(n.Packages, " "))
	}
	return tw.Flush()
}
