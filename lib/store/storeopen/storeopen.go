// Package storeopen turns a store URL into a store.Store, picking the
// backend by scheme and wrapping it in the retry decorator:
//
//	file:///abs/dir  or a plain path      lib/store/filestore
//	sftp://user@host[:port]/dir           lib/store/sftpstore
//	s3://bucket[/prefix][?endpoint=URL]   lib/store/s3store
//	mem://name                            lib/store/memstore, only with Options.Mem (tests)
//
// Credentials come from Options (command-line flags: tools embed
// job.StoreAccess in their kong grammar and pass it in Options), else
// from the environment (see docs/stores.md). This is the one place where backends
// are wired and decorators stacked.
package storeopen

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/filestore"
	"github.com/pkgbulk/pkgbulk/lib/store/memstore"
	"github.com/pkgbulk/pkgbulk/lib/store/retry"
)

// Options configure Open. The zero value works for file://, and for
// sftp/s3 when the environment provides what they need.
type Options struct {
	// StoreAccess is the one definition of the store-access settings
	// (the job document's store_access and every tool's "Store access"
	// flags; tools embed job.StoreAccess in their grammar and pass it
	// here). Empty S3 fields fall back to the URL's ?endpoint= and
	// ?region= parameters, then to AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL,
	// AWS_REGION (or AWS_DEFAULT_REGION). An empty SSHIdentity means the
	// keys of a running ssh-agent (SSH_AUTH_SOCK), then ~/.ssh/id_ed25519,
	// id_ecdsa and id_rsa if they exist and are not passphrase-protected;
	// an empty KnownHosts means ~/.ssh/known_hosts (unknown hosts are
	// refused); a zero ConnectTimeout means 15s.
	job.StoreAccess

	// S3 credentials; empty fields fall back to AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, then the AWS
	// credentials file.
	S3AccessKey    string
	S3SecretKey    string
	S3SessionToken string

	// Retry bounds the retry decorator; NoRetry leaves it out.
	Retry   retry.Options
	NoRetry bool

	// Mem enables mem://name stores, for tests: every Open of mem://name
	// with the same Registry returns the same in-memory store. Without a
	// Registry (as in every tool) mem:// is an unknown scheme: a store
	// that vanishes when the tool exits is no use to a user.
	Mem *memstore.Registry

	// Getenv replaces os.Getenv (tests); nil means os.Getenv.
	Getenv func(string) string
}

func (o Options) getenv(k string) string {
	if o.Getenv != nil {
		return o.Getenv(k)
	}
	return os.Getenv(k)
}

func (o Options) connectTimeout() time.Duration {
	if o.ConnectTimeout > 0 {
		return time.Duration(o.ConnectTimeout)
	}
	return 15 * time.Second
}

// Open returns the store rawURL names, wrapped in the retry decorator.
func Open(ctx context.Context, rawURL string, opts Options) (store.Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := open(ctx, rawURL, opts)
	if err != nil {
		return nil, err
	}
	if opts.NoRetry {
		return s, nil
	}
	return retry.New(s, opts.Retry), nil
}

func open(ctx context.Context, rawURL string, opts Options) (store.Store, error) {
	if rawURL == "" {
		return nil, fmt.Errorf("open store: empty URL")
	}
	// A plain path (absolute or relative) is a file store.
	if isPlainPath(rawURL) {
		return filestore.New(rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("open store %s: file URLs name a local directory (file:///abs/dir), not host %q", rawURL, u.Host)
		}
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return nil, fmt.Errorf("open store %s: file URL needs an absolute path (file:///abs/dir)", rawURL)
		}
		return filestore.New(u.Path)
	case "mem":
		if opts.Mem != nil {
			return opts.Mem.Store(u.Host + u.Path), nil
		}
	case "sftp":
		return openSFTP(ctx, u, opts)
	case "s3":
		return openS3(ctx, u, opts)
	}
	return nil, fmt.Errorf("open store %s: unknown scheme %q (want file, sftp or s3)", redact(u), u.Scheme)
}

// isPlainPath tells a path from a URL: URLs have "://" or start with a
// scheme we know ("file:rel" is a mistyped URL, not a directory).
func isPlainPath(s string) bool {
	if strings.Contains(s, "://") {
		return false
	}
	for _, scheme := range []string{"file:", "sftp:", "s3:", "mem:"} {
		if strings.HasPrefix(s, scheme) {
			return false
		}
	}
	return true
}

// redact drops a password from u for messages.
func redact(u *url.URL) string { return u.Redacted() }
