package pullworker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/distfile"
	"github.com/pkgbulk/pkgbulk/lib/pull"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/filestore"
)

// Reader is what a lease's build reads from the server's store: the
// finished packages its dependencies are, and what the up-to-date check
// looks at. Missing objects (and objects the server will not show) are
// errors wrapping store.ErrNotExist.
type Reader interface {
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	Stat(ctx context.Context, name string) (store.Info, error)
	List(ctx context.Context, prefix string, fn func(store.Info) error) error
}

// Staging is the store a lease's build writes into: a local directory of
// the worker's for everything the build writes (its package, fragment,
// logs, and the distfiles and distfile locks lib/build keeps), over the
// server's store for what it reads. Nothing reaches the server until
// Upload, which sends only the objects of the lease's scope; deletes and
// writes outside the scope stay local. The build never holds the session
// or the lease: it sees a store.
type Staging struct {
	local  *filestore.Store
	remote Reader
	scope  pull.ObjectScope
	desc   string
}

// NewStaging makes the staging store of a lease in dir (which must be
// empty or missing; the caller removes it after the lease).
func NewStaging(dir string, remote Reader, scope pull.ObjectScope, desc string) (*Staging, error) {
	fs, err := filestore.New(dir)
	if err != nil {
		return nil, fmt.Errorf("staging store: %w", err)
	}
	return &Staging{local: fs, remote: remote, scope: scope, desc: desc}, nil
}

// Root is the local directory (lib/build hides a file store's root from
// its sandboxes).
func (s *Staging) Root() string { return s.local.Root() }

// Unwrap gives lib/build the local file store, whose directory it hides
// from the build's sandbox like any file store's.
func (s *Staging) Unwrap() store.Store { return s.local }

func (s *Staging) String() string { return s.desc }

// Close closes nothing: the caller removes the directory.
func (s *Staging) Close() error { return nil }

// ErrOutOfScope is wrapped by the error of a write the lease may not make.
var ErrOutOfScope = errors.New("outside the lease's objects")

// InScope reports whether name is one of the lease's objects: its
// package, its fragment, or a file directly inside its log directory.
func InScope(sc pull.ObjectScope, name string) bool {
	switch {
	case name == "":
		return false
	case name == sc.Package || name == sc.Fragment:
		return true
	case sc.LogDir != "" && strings.HasPrefix(name, sc.LogDir):
		rest := strings.TrimPrefix(name, sc.LogDir)
		return rest != "" && !strings.Contains(rest, "/") && path.Clean(name) == name
	}
	return false
}

// localOnly names what a build writes that is never uploaded: distfiles
// (another builder's copy is the server's to keep) and their locks.
func localOnly(name string) bool {
	return strings.HasPrefix(name, distfile.Prefix) || strings.HasPrefix(name, distfile.LockPrefix)
}

// Put writes name into the staging directory; names outside the lease's
// scope (and the local-only distfiles) are refused.
func (s *Staging) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if !InScope(s.scope, name) && !localOnly(name) {
		return fmt.Errorf("put %s: %w (%s, %s, %s*)", name, ErrOutOfScope, s.scope.Package, s.scope.Fragment, s.scope.LogDir)
	}
	return s.local.Put(ctx, name, r, size)
}

// Get reads the staged object, else the server's.
func (s *Staging) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	rc, err := s.local.Get(ctx, name)
	if err == nil || !store.IsNotExist(err) || !s.remoteReadable(name) {
		return rc, err
	}
	return s.remote.Get(ctx, name)
}

// Stat is the staged object's Info, else the server's.
func (s *Staging) Stat(ctx context.Context, name string) (store.Info, error) {
	i, err := s.local.Stat(ctx, name)
	if err == nil || !store.IsNotExist(err) || !s.remoteReadable(name) {
		return i, err
	}
	return s.remote.Stat(ctx, name)
}

// List lists the staged objects, then the server's under the same prefix
// that are not staged. The lease's own log directory is listed locally
// only: the server replaces it when it promotes the lease's objects.
func (s *Staging) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	seen := map[string]bool{}
	err := s.local.List(ctx, prefix, func(i store.Info) error {
		seen[i.Name] = true
		return fn(i)
	})
	if err != nil && !store.IsNotExist(err) {
		return err
	}
	if !s.remoteReadable(prefix) || (s.scope.LogDir != "" && strings.HasPrefix(prefix, s.scope.LogDir)) {
		return nil
	}
	err = s.remote.List(ctx, prefix, func(i store.Info) error {
		if seen[i.Name] {
			return nil
		}
		return fn(i)
	})
	if store.IsNotExist(err) {
		return nil
	}
	return err
}

// remoteReadable: the server is asked about packages and fragments; a
// distfile lock is this worker's own business.
func (s *Staging) remoteReadable(name string) bool {
	return !strings.HasPrefix(name, distfile.LockPrefix)
}

// Delete removes a staged object. The server's objects are never deleted
// by a worker: lib/build deletes stale logs of a package, which the server
// does itself when it promotes the lease's log directory.
func (s *Staging) Delete(ctx context.Context, name string) error {
	return s.local.Delete(ctx, name)
}

// Staged lists the staged objects of the lease's scope, the ones Upload
// sends.
func (s *Staging) Staged(ctx context.Context) ([]store.Info, error) {
	var out []store.Info
	for _, prefix := range []string{"All/", "index/", "bulklog/"} {
		err := s.local.List(ctx, prefix, func(i store.Info) error {
			if InScope(s.scope, i.Name) {
				out = append(out, i)
			}
			return nil
		})
		if err != nil && !store.IsNotExist(err) {
			return nil, err
		}
	}
	return out, nil
}

// Open opens a staged object for upload.
func (s *Staging) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	return s.local.Get(ctx, name)
}
