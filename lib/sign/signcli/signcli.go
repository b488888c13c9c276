// Package signcli is the command line of pkgsign: the kong grammar and the
// Run methods, which parse flags, load keys and call lib/sign.
package signcli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/sign"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
	"golang.org/x/term"
)

// Description is pkgsign's --help text.
const Description = `Sign binary packages in pkg_install's signed-package format, and verify them
the way pkg_add does.

  pkgsign sign --gpg-key KEY.asc (--store URL | PKGFILE...)
  pkgsign sign --x509-key KEY.pem --x509-cert CERT.pem (--store URL | PKGFILE...)
  pkgsign verify [--gpg-pubkey PUB.asc | --x509-anchor CA.pem] (--store URL | PKGFILE...)

Signing is a step of its own, run where the key is (never on the builders),
against package files or a whole store (All/*.tgz). It can be re-run: a
package already validly signed with the same key is skipped, an unsigned one
(e.g. a rebuild) is signed, one signed by another key is re-signed, and a
signed package whose contents no longer match its +PKG_HASH is reported and
left alone. Each package is replaced atomically (new file + rename, or the
store's atomic Put), so an interrupted run leaves every package either as it
was or validly signed. Packages whose size is an exact multiple of 65536
bytes are refused: pkg_install cannot sign or verify them.

A passphrase-protected key is unlocked with --passphrase-file, else the
PKGSIGN_PASSPHRASE environment variable, else a prompt on the terminal.

Store URLs: file:///dir or a plain directory path, sftp://user@host/dir,
s3://bucket/prefix (see docs/stores.md). See docs/signing.md for set-up and
the pkg_install.conf settings clients need.

Exit status: 0 success; 1 some package could not be signed or did not
verify; 2 bad usage, an unusable key or certificate, or a store/I-O error.`

// Command is the pkgsign grammar.
type Command struct {
	Sign   SignCmd   `cmd:"" help:"Sign packages (files or a store's All/*.tgz), skipping those already signed with this key."`
	Verify VerifyCmd `cmd:"" help:"Verify signed packages as pkg_add would, saying which block or signature fails and why."`
}

// SignCmd is "pkgsign sign".
type SignCmd struct {
	GPGKey         string          `name:"gpg-key" placeholder:"FILE" help:"Armoured OpenPGP secret key (gpg --export-secret-keys --armor KEYID): writes +PKG_GPG_SIGNATURE." xor:"kind"`
	X509Key        string          `name:"x509-key" placeholder:"KEY.pem" help:"PEM private key (RSA or ECDSA; may be encrypted): writes +PKG_SIGNATURE." xor:"kind"`
	X509Cert       string          `name:"x509-cert" placeholder:"CERT.pem" help:"The signer's certificate (exactly one; codeSigning; not a CA)."`
	PassphraseFile string          `name:"passphrase-file" placeholder:"FILE" help:"Read the key's passphrase from the first line of FILE."`
	Store          string          `name:"store" placeholder:"URL" help:"Sign every All/*<suffix> package of this store." xor:"src"`
	Access         job.StoreAccess `embed:"" group:"Store access"`
	Suffix         string          `name:"suffix" default:".tgz" help:"Package file suffix in the store's All/."`
	Jobs           int             `name:"jobs" short:"j" default:"1" help:"Packages to sign at once (more helps with sftp and S3 stores)."`
	JSON           bool            `name:"json" help:"Print the report as JSON on stdout."`
	Verbose        bool            `name:"verbose" short:"v" help:"Print one line per package on stderr (always on a terminal)."`
	Files          []string        `arg:"" optional:"" name:"pkgfile" help:"Package files to sign in place."`
}

// Help is the long help of "pkgsign sign".
func (c *SignCmd) Help() string {
	return `Each package becomes an ar archive of +PKG_HASH, the signature and the
unchanged package (named <PKGNAME>.tmp<suffix>, as pkgsrc's package.mk names
pkg_admin's input); the ar headers carry the original file's mtime, owner and
mode (for store objects: their mtime, owner 0, mode 0644).

Signing does not make the next bulk build rebuild anything: the signed file
keeps the original's modification time (local files, file:// and sftp://
stores); on S3, which cannot set times, packages are replaced in the order of
their times and after their @blddep dependencies. pkgsign removes pkgindex's
cached entries of the packages it rewrites (index/<PKGNAME>.pkginfo and
.sha512) and index/merge-state.json, so 'pkgindex merge' recomputes them
(docs/signing.md).

The JSON report has: target, signer, packages, signed, resigned, skipped,
failed, outcomes [{name, pkgname, action, reason, size, warning}], seconds.`
}

func (c *SignCmd) passphrase(g *cli.Globals) func() ([]byte, error) {
	return func() ([]byte, error) {
		if c.PassphraseFile != "" {
			b, err := os.ReadFile(c.PassphraseFile)
			if err != nil {
				return nil, err
			}
			line, _, _ := bytes.Cut(b, []byte("\n"))
			return bytes.TrimSuffix(line, []byte("\r")), nil
		}
		if p, ok := os.LookupEnv("PKGSIGN_PASSPHRASE"); ok {
			return []byte(p), nil
		}
		f, ok := g.Stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return nil, errors.New("the key is passphrase-protected: give --passphrase-file or PKGSIGN_PASSPHRASE (no terminal to ask on)")
		}
		fmt.Fprint(g.Stderr, "Passphrase: ")
		pw, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(g.Stderr)
		return pw, err
	}
}

func (c *SignCmd) signer(g *cli.Globals) (sign.Signer, error) {
	switch {
	case c.GPGKey != "":
		if c.X509Cert != "" {
			return nil, errors.New("--x509-cert goes with --x509-key, not --gpg-key")
		}
		return sign.LoadGPGSigner(c.GPGKey, c.passphrase(g))
	case c.X509Key != "":
		if c.X509Cert == "" {
			return nil, errors.New("--x509-key needs --x509-cert")
		}
		return sign.LoadX509Signer(c.X509Key, c.X509Cert, c.passphrase(g))
	}
	return nil, errors.New("give --gpg-key FILE or --x509-key KEY.pem --x509-cert CERT.pem")
}

// Run signs.
func (c *SignCmd) Run(ctx context.Context, g *cli.Globals) error {
	if (c.Store == "") == (len(c.Files) == 0) {
		return errors.New("give either --store URL or package files")
	}
	s, err := c.signer(g)
	if err != nil {
		return err
	}
	if w, ok := s.(interface{ Warning() string }); ok && w.Warning() != "" {
		fmt.Fprintf(g.Stderr, "pkgsign: warning: %s\n", w.Warning())
	}
	o := sign.Options{Suffix: c.Suffix, Jobs: c.Jobs}
	if c.Verbose || cli.IsTerminal(g.Stderr) {
		o.Progress = g.Stderr
	}
	var rep *sign.Report
	if c.Store != "" {
		st, err := storeopen.Open(ctx, c.Store, storeopen.Options{StoreAccess: c.Access})
		if err != nil {
			return err
		}
		defer st.Close()
		rep, err = sign.SignStore(ctx, st, s, o)
		if err != nil {
			return err
		}
	} else {
		rep, err = sign.SignFiles(ctx, c.Files, s, o)
		if err != nil {
			return err
		}
	}
	if o.Progress == nil {
		for _, out := range rep.Outcomes {
			if out.Action == sign.ActionFailed {
				fmt.Fprintf(g.Stderr, "pkgsign: %s: %s\n", out.Name, out.Reason)
			}
			if out.Warning != "" {
				fmt.Fprintf(g.Stderr, "pkgsign: warning: %s: %s\n", out.Name, out.Warning)
			}
		}
	}
	if c.JSON {
		if err := writeJSON(g.Stdout, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(g.Stdout, "%d packages: %d signed, %d re-signed, %d already signed, %d failed (%s)\n",
			rep.Packages, rep.Signed, rep.Resigned, rep.Skipped, rep.Failed, rep.Signer)
	}
	if rep.Failed > 0 {
		return cli.Failed("%d of %d packages could not be signed", rep.Failed, rep.Packages)
	}
	return nil
}

// VerifyCmd is "pkgsign verify".
type VerifyCmd struct {
	GPGPubkey  string          `name:"gpg-pubkey" placeholder:"FILE" help:"OpenPGP public keyring (armoured or binary), as GPG_KEYRING_VERIFY." xor:"kind"`
	X509Anchor string          `name:"x509-anchor" placeholder:"CA.pem" help:"Trusted CA certificates, as CERTIFICATE_ANCHOR_PKGS." xor:"kind"`
	X509Chain  string          `name:"x509-chain" placeholder:"FILE" help:"Untrusted intermediate certificates, as CERTIFICATE_CHAIN."`
	Store      string          `name:"store" placeholder:"URL" help:"Verify every All/*<suffix> package of this store." xor:"src"`
	Access     job.StoreAccess `embed:"" group:"Store access"`
	Suffix     string          `name:"suffix" default:".tgz" help:"Package file suffix in the store's All/."`
	JSON       bool            `name:"json" help:"Print one JSON array of results on stdout."`
	Files      []string        `arg:"" optional:"" name:"pkgfile" help:"Package files to verify."`
}

// Help is the long help of "pkgsign verify".
func (c *VerifyCmd) Help() string {
	return `Checks, in pkg_add's order: the ar container, +PKG_HASH against pkg_install's
template, the signature over +PKG_HASH (with --gpg-pubkey or --x509-anchor;
without either only the structure and hashes are checked), the X.509 signer
rules, the inner package's size, and every 64 KiB block's SHA-512, with
pkg_install's own block lengths. It also reports bytes that no signature
covers (ar headers, padding, armour lines, the inner member's name) when
they differ from what pkg_admin writes: pkg_add would not notice those, but
they mean the file was altered.

Each result says pkg_add's predicted verdict (accept, reject, or unknown
when no key was given), the problems that make pkg_add reject it, and
notes. JSON fields: file, pkgname, signed, signature_member, signer,
signature_checked, inner_name, inner_size, blocks, bad_blocks, pkg_add,
problems, notes.`
}

// Run verifies.
func (c *VerifyCmd) Run(ctx context.Context, g *cli.Globals) error {
	if (c.Store == "") == (len(c.Files) == 0) {
		return errors.New("give either --store URL or package files")
	}
	var v sign.Verifier
	var err error
	switch {
	case c.GPGPubkey != "":
		if c.X509Chain != "" {
			return errors.New("--x509-chain goes with --x509-anchor")
		}
		v, err = sign.NewGPGVerifier(c.GPGPubkey)
	case c.X509Anchor != "":
		v, err = sign.NewX509Verifier(c.X509Anchor, c.X509Chain)
	}
	if err != nil {
		return err
	}
	var res []*sign.Result
	if c.Store != "" {
		st, err := storeopen.Open(ctx, c.Store, storeopen.Options{StoreAccess: c.Access})
		if err != nil {
			return err
		}
		defer st.Close()
		if res, err = sign.VerifyStore(ctx, st, c.Suffix, v); err != nil {
			return err
		}
	} else if res, err = sign.VerifyFiles(ctx, c.Files, v); err != nil {
		return err
	}
	failed := 0
	for _, r := range res {
		if !r.OK() {
			failed++
		}
	}
	if c.JSON {
		if res == nil {
			res = []*sign.Result{}
		}
		if err := writeJSON(g.Stdout, res); err != nil {
			return err
		}
	} else {
		for _, r := range res {
			printResult(g.Stdout, r)
		}
	}
	if failed > 0 {
		return cli.Failed("%d of %d packages did not verify", failed, len(res))
	}
	return nil
}

func printResult(w io.Writer, r *sign.Result) {
	if r.OK() {
		who := r.Signer
		if !r.SignatureChecked {
			who = "signature not checked (no --gpg-pubkey or --x509-anchor)"
		}
		fmt.Fprintf(w, "OK %s: %s, %d blocks, %s\n", r.File, r.PkgName, r.Blocks, who)
		return
	}
	fmt.Fprintf(w, "FAIL %s: pkg_add would %s\n", r.File, map[string]string{
		"accept": "accept it (but see the notes)", "reject": "reject it", "unknown": "need a key to decide"}[r.PkgAdd])
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  problem: %s\n", strings.ReplaceAll(p, "\n", " "))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", strings.ReplaceAll(n, "\n", " "))
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
