// Package store is where packages, build logs, index fragments and
// distfiles live: a local directory, an sftp server or an S3-compatible
// bucket, behind one small interface with one conformance suite
// (lib/store/storetest).
//
// Layout inside every store (DESIGN.md):
//
//	All/<PKGNAME>.tgz          binary packages (pkgsrc's layout)
//	<category>/<PKGNAME>.tgz   optional per-category copies
//	bulklog/<PKGNAME>/*.log    build logs
//	index/<PKGNAME>.pkginfo    pkg_summary fragments (pkg_info -X entries)
//	distfiles/...              source archives
//
// Names are slash-separated, relative, never start with "/" and never
// contain ".." elements; Open rejects such names with an error.
package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotExist is wrapped by every error that means "no such object".
// Use errors.Is(err, store.ErrNotExist) (or IsNotExist).
var ErrNotExist = errors.New("object does not exist")

// IsNotExist reports whether err says the object is missing.
func IsNotExist(err error) bool { return errors.Is(err, ErrNotExist) }

// Info describes one stored object.
type Info struct {
	Name    string    // slash-separated name relative to the store root
	Size    int64     // bytes
	ModTime time.Time // last modification as the store reports it
}

// Store is the contract every backend satisfies.
//
//   - Put stores the whole of r under name. A reader never sees a partly
//     written object: Get/Stat/List return the old object or the new one.
//     Put creates intermediate "directories" as needed. size is the
//     number of bytes r yields, or -1 when unknown.
//   - Get opens name for reading; the caller closes the reader. A missing
//     object is an error wrapping ErrNotExist.
//   - Stat returns the Info of name, or an error wrapping ErrNotExist.
//   - List calls fn once for every object whose name starts with prefix
//     (a directory prefix such as "All/" or "" for all), in no particular
//     order; an error returned by fn stops the listing and is returned.
//   - Delete removes name; deleting a missing object is not an error.
//   - Every method takes ctx first and returns ctx.Err() once cancelled.
//   - String returns the store's URL without credentials, for messages.
type Store interface {
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	Stat(ctx context.Context, name string) (Info, error)
	List(ctx context.Context, prefix string, fn func(Info) error) error
	Delete(ctx context.Context, name string) error
	Close() error
	String() string
}
