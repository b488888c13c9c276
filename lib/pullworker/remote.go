package pullworker

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/pull"
	"github.com/pkgbulk/pkgbulk/lib/store"
)

// ServerReader reads the server's finished objects through lib/pull's
// client (GET, HEAD and list of /v1/object). An object the server does
// not have, or will not show a worker, is store.ErrNotExist to a build: a
// missing dependency is then the package's failure message, as with any
// store.
type ServerReader struct {
	C *pull.Client
}

func notExist(err error, name string) error {
	if pull.IsNotExist(err) || pull.IsForbidden(err) {
		return fmt.Errorf("%s: %w (%v)", name, store.ErrNotExist, err)
	}
	return err
}

// readable is what the server serves (packages and fragments): other
// names (distfiles) are not asked for.
func readable(name string) bool {
	return strings.HasPrefix(name, "All/") || strings.HasPrefix(name, "index/")
}

// Get opens a finished object.
func (r ServerReader) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if !readable(name) {
		return nil, fmt.Errorf("%s: %w (not served to workers)", name, store.ErrNotExist)
	}
	rc, _, err := r.C.Fetch(ctx, name)
	if err != nil {
		return nil, notExist(err, name)
	}
	return rc, nil
}

// Stat is a finished object's size and time.
func (r ServerReader) Stat(ctx context.Context, name string) (store.Info, error) {
	if !readable(name) {
		return store.Info{}, fmt.Errorf("%s: %w (not served to workers)", name, store.ErrNotExist)
	}
	i, err := r.C.Stat(ctx, name)
	if err != nil {
		return store.Info{}, notExist(err, name)
	}
	return store.Info{Name: i.Name, Size: i.Size, ModTime: i.ModTime}, nil
}

// List lists the finished objects under prefix.
func (r ServerReader) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if !readable(prefix) {
		return nil
	}
	objs, err := r.C.List(ctx, prefix)
	if err != nil {
		return notExist(err, prefix)
	}
	for _, o := range objs {
		if !strings.HasPrefix(o.Name, prefix) {
			continue
		}
		if err := fn(store.Info{Name: o.Name, Size: o.Size, ModTime: o.ModTime}); err != nil {
			return err
		}
	}
	return nil
}
