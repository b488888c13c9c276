// Package memstore is an in-memory store.Store for tests. It passes the
// same conformance suite (lib/store/storetest) as the real backends, so a
// test using it exercises the contract, not a looser fake.
//
// Put copies the whole reader before it replaces the object, so readers
// see the old or the new bytes, never a mix. Objects are immutable once
// stored: Get hands out a reader over a snapshot.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

type object struct {
	data    []byte
	modTime time.Time
}

// Store is an in-memory store.Store; the zero value is not usable, call New.
type Store struct {
	name string
	mu   sync.Mutex
	objs map[string]object
}

var _ store.Store = (*Store)(nil)

// New returns an empty store; name only shows in String ("mem://name").
func New(name string) *Store {
	return &Store{name: name, objs: make(map[string]object)}
}

// Registry hands out one Store per name, so that several Opens of
// "mem://x" within one program (or test) share their objects. It replaces
// a package-level map: whoever wants sharing owns a Registry.
type Registry struct {
	mu     sync.Mutex
	stores map[string]*Store
}

// Store returns the store called name, creating it on first use.
func (r *Registry) Store(name string) *Store {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stores == nil {
		r.stores = make(map[string]*Store)
	}
	s, ok := r.stores[name]
	if !ok {
		s = New(name)
		r.stores[name] = s
	}
	return s
}

// String returns "mem://name".
func (s *Store) String() string { return "mem://" + s.name }

// Close does nothing; the objects stay for other users of the same Store.
func (s *Store) Close() error { return nil }

// Put stores a copy of everything r yields.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckName(name); err != nil {
		return fmt.Errorf("put to %s: %w", s, err)
	}
	var buf bytes.Buffer
	if size > 0 {
		buf.Grow(int(size))
	}
	if _, err := io.Copy(&buf, store.CtxReader(ctx, r)); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("put %s to %s: %w", name, s, err)
	}
	if size >= 0 && int64(buf.Len()) != size {
		return fmt.Errorf("put %s to %s: reader yielded %d bytes, expected %d", name, s, buf.Len(), size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objs[name] = object{data: buf.Bytes(), modTime: time.Now()}
	return nil
}

// Get returns a reader over the object's current bytes.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := store.CheckName(name); err != nil {
		return nil, fmt.Errorf("get from %s: %w", s, err)
	}
	s.mu.Lock()
	o, ok := s.objs[name]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("get %s from %s: %w", name, s, store.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(o.data)), nil
}

// Stat describes name.
func (s *Store) Stat(ctx context.Context, name string) (store.Info, error) {
	if err := ctx.Err(); err != nil {
		return store.Info{}, err
	}
	if err := store.CheckName(name); err != nil {
		return store.Info{}, fmt.Errorf("stat in %s: %w", s, err)
	}
	s.mu.Lock()
	o, ok := s.objs[name]
	s.mu.Unlock()
	if !ok {
		return store.Info{}, fmt.Errorf("stat %s in %s: %w", name, s, store.ErrNotExist)
	}
	return store.Info{Name: name, Size: int64(len(o.data)), ModTime: o.modTime}, nil
}

// List reports the objects whose names start with prefix. It works on a
// snapshot, so fn may call back into the store.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("list in %s: %w", s, err)
	}
	s.mu.Lock()
	var infos []store.Info
	for name, o := range s.objs {
		if strings.HasPrefix(name, prefix) {
			infos = append(infos, store.Info{Name: name, Size: int64(len(o.data)), ModTime: o.modTime})
		}
	}
	s.mu.Unlock()
	for _, fi := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes name; a missing name is not an error.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckName(name); err != nil {
		return fmt.Errorf("delete in %s: %w", s, err)
	}
	s.mu.Lock()
	delete(s.objs, name)
	s.mu.Unlock()
	return nil
}
