// Package sftpstore keeps a store in a directory on an SSH server, over
// the SFTP subsystem (github.com/pkg/sftp on golang.org/x/crypto/ssh).
//
// The server's host key must be listed in a known_hosts file; an unknown
// or changed key is refused with an error naming the host and the file,
// and that error is permanent (not retried).
//
// Put is atomic for readers: it uploads to a temporary name in the
// object's own directory, asks the server to fsync it (fsync@openssh.com,
// when offered) and renames it over the object with
// posix-rename@openssh.com, which replaces the target atomically.
// Servers without that extension are refused when a Put needs it.
//
// A lost connection is re-established on the next call; a cancelled ctx
// closes the connection so that a stuck server cannot hold a call (other
// calls in flight on the same Store then fail and are retried by the
// retry decorator).
package sftpstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

// Config says where the store is and how to log in.
type Config struct {
	User string
	Host string // host name or address, no port
	Port int    // 0 means 22
	Dir  string // absolute directory on the server
	// Auth are the SSH authentication methods to offer (see Auth).
	Auth []ssh.AuthMethod
	// HostKeyCallback checks the server's key (see HostKeyChecker).
	HostKeyCallback ssh.HostKeyCallback
	// HostKeyAlgorithms, if set, are the key types to ask the server for,
	// so that the one in known_hosts is used.
	HostKeyAlgorithms []string
	// Timeout bounds connecting and the SSH handshake (default 15s).
	Timeout time.Duration
	// OnClose, if set, runs when the Store is closed (to release an
	// ssh-agent connection).
	OnClose func()
}

// ParseURL reads sftp://user@host[:port]/dir into a Config (without auth
// and host key checking). The path is absolute on the server; start it
// with "/~/" for a directory relative to the login's home.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("sftp URL: %w", err)
	}
	if u.Scheme != "sftp" {
		return Config{}, fmt.Errorf("sftp URL %s: scheme is not sftp", u.Redacted())
	}
	if _, hasPw := u.User.Password(); hasPw {
		return Config{}, fmt.Errorf("sftp URL %s: passwords in URLs are not supported; use a key or ssh-agent", u.Redacted())
	}
	c := Config{User: u.User.Username(), Host: u.Hostname(), Dir: path.Clean("/" + u.Path)}
	if c.Host == "" {
		return Config{}, fmt.Errorf("sftp URL %s: no host", u.Redacted())
	}
	if c.User == "" {
		return Config{}, fmt.Errorf("sftp URL %s: no user (sftp://user@host/dir)", u.Redacted())
	}
	if p := u.Port(); p != "" {
		if c.Port, err = strconv.Atoi(p); err != nil || c.Port <= 0 || c.Port > 65535 {
			return Config{}, fmt.Errorf("sftp URL %s: bad port %q", u.Redacted(), p)
		}
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return Config{}, fmt.Errorf("sftp URL %s: unexpected query or fragment", u.Redacted())
	}
	return c, nil
}

func (c Config) addr() string {
	port := c.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(c.Host, strconv.Itoa(port))
}

// URL returns the store's URL (no credentials).
func (c Config) URL() string {
	host := c.Host
	if c.Port != 0 && c.Port != 22 {
		host = c.addr()
	}
	return (&url.URL{Scheme: "sftp", User: url.User(c.User), Host: host, Path: c.Dir}).String()
}

// Store is a store.Store on an SFTP server.
type Store struct {
	cfg Config
	dir string // resolved absolute directory
	url string

	mu     sync.Mutex
	client *sftp.Client // nil when disconnected
	ssh    *ssh.Client
}

var _ store.Store = (*Store)(nil)

// New connects to the server and returns the store; the directory is
// created on the first Put.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.HostKeyCallback == nil {
		return nil, fmt.Errorf("sftp store %s: no host key check configured", cfg.URL())
	}
	s := &Store{cfg: cfg, url: cfg.URL()}
	c, err := s.connect(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("sftp store %s: %w", s.url, err)
	}
	s.dir = cfg.Dir
	if rest, ok := strings.CutPrefix(cfg.Dir+"/", "/~/"); ok {
		home, err := c.Getwd()
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("sftp store %s: home directory: %w", s.url, err)
		}
		s.dir = path.Join(home, rest)
	}
	return s, nil
}

// String returns the sftp:// URL.
func (s *Store) String() string { return s.url }

// Close closes the connection.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
	if s.cfg.OnClose != nil {
		s.cfg.OnClose()
		s.cfg.OnClose = nil
	}
	return nil
}

func (s *Store) closeLocked() {
	if s.client != nil {
		s.client.Close()
		s.ssh.Close()
		s.client, s.ssh = nil, nil
	}
}

// connect returns the current client, dialling if there is none.
func (s *Store) connect(ctx context.Context) (*sftp.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return s.client, nil
	}
	timeout := s.cfg.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := s.cfg.addr()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	// The handshake has no ctx: bound it by a deadline on the socket.
	deadline, _ := dctx.Deadline()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(dctx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{
		User:              s.cfg.User,
		Auth:              s.cfg.Auth,
		HostKeyCallback:   s.cfg.HostKeyCallback,
		HostKeyAlgorithms: s.cfg.HostKeyAlgorithms,
		Timeout:           timeout,
	})
	if !stop() && err == nil {
		err = dctx.Err()
	}
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, store.ErrPermanent) {
			return nil, err
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, store.Permanent(fmt.Errorf("login as %s failed (offer a key with the identity option or ssh-agent): %w", s.cfg.User, err))
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", addr, err)
	}
	conn.SetDeadline(time.Time{})
	client := ssh.NewClient(sc, chans, reqs)
	sf, err := sftp.NewClient(client, sftp.UseConcurrentWrites(true))
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("start the sftp subsystem: %w", err)
	}
	s.client, s.ssh = sf, client
	return sf, nil
}

// drop closes c if it is still the current connection.
func (s *Store) drop(c *sftp.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == c {
		s.closeLocked()
	}
}

// with runs fn on a connected client. A cancelled ctx closes the
// connection to unblock fn; a lost connection is dropped so that the next
// call reconnects.
func (s *Store) with(ctx context.Context, op, name string, fn func(c *sftp.Client) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := s.connect(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return s.wrap(op, name, err)
	}
	stop := context.AfterFunc(ctx, func() { s.drop(c) })
	err = fn(c)
	if !stop() {
		return ctx.Err()
	}
	if err != nil && connLost(err) {
		s.drop(c)
	}
	return err
}

func connLost(err error) bool {
	var ne net.Error
	return errors.Is(err, sftp.ErrSSHFxConnectionLost) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}

func (s *Store) path(name string) string { return path.Join(s.dir, name) }

func (s *Store) wrap(op, name string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		err = fmt.Errorf("%w (%v)", store.ErrNotExist, err)
	case errors.Is(err, fs.ErrPermission):
		err = store.Permanent(err)
	}
	return fmt.Errorf("%s %s in %s: %w", op, name, s.url, err)
}

func tempName(dir string) (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return path.Join(dir, store.TempPrefix+hex.EncodeToString(b)), nil
}

// Put uploads to a temporary name and renames it over name.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckName(name); err != nil {
		return fmt.Errorf("put to %s: %w", s.url, err)
	}
	return s.with(ctx, "put", name, func(c *sftp.Client) error {
		if _, ok := c.HasExtension("posix-rename@openssh.com"); !ok {
			return store.Permanent(fmt.Errorf("put %s to %s: the server lacks posix-rename@openssh.com, so puts cannot be atomic", name, s.url))
		}
		p := s.path(name)
		dir := path.Dir(p)
		if err := c.MkdirAll(dir); err != nil {
			return s.wrap("put", name, fmt.Errorf("create directory %s: %w", dir, err))
		}
		tmp, err := tempName(dir)
		if err != nil {
			return err
		}
		f, err := c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if err != nil {
			return s.wrap("put", name, err)
		}
		err = upload(ctx, c, f, r, size)
		if err == nil {
			err = c.PosixRename(tmp, p)
		}
		if err != nil {
			f.Close()
			if rerr := c.Remove(tmp); rerr != nil && ctx.Err() != nil {
				// Cancelling closed the connection under us: remove
				// the temporary file over a new one, briefly.
				s.removeTemp(ctx, tmp)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return s.wrap("put", name, err)
		}
		return nil
	})
}

// removeTemp removes a temporary file left by a cancelled Put, giving up
// after a few seconds: List ignores leftovers anyway.
func (s *Store) removeTemp(ctx context.Context, tmp string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	s.with(ctx, "remove", tmp, func(c *sftp.Client) error { return c.Remove(tmp) })
}

func upload(ctx context.Context, c *sftp.Client, f *sftp.File, r io.Reader, size int64) error {
	n, err := f.ReadFrom(store.CtxReader(ctx, r))
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		return fmt.Errorf("reader yielded %d bytes, expected %d", n, size)
	}
	if _, ok := c.HasExtension("fsync@openssh.com"); ok {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync: %w", err)
		}
	}
	return f.Close()
}

// Get opens name for reading.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := store.CheckName(name); err != nil {
		return nil, fmt.Errorf("get from %s: %w", s.url, err)
	}
	var f *sftp.File
	err := s.with(ctx, "get", name, func(c *sftp.Client) error {
		var err error
		f, err = c.Open(s.path(name))
		if err != nil {
			return s.wrap("get", name, err)
		}
		fi, err := f.Stat()
		if err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("%w: not a regular file", store.ErrNotExist)
		}
		if err != nil {
			f.Close()
			return s.wrap("get", name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Stat describes name.
func (s *Store) Stat(ctx context.Context, name string) (store.Info, error) {
	if err := ctx.Err(); err != nil {
		return store.Info{}, err
	}
	if err := store.CheckName(name); err != nil {
		return store.Info{}, fmt.Errorf("stat in %s: %w", s.url, err)
	}
	var info store.Info
	err := s.with(ctx, "stat", name, func(c *sftp.Client) error {
		fi, err := c.Stat(s.path(name))
		if err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("%w: not a regular file", store.ErrNotExist)
		}
		if err != nil {
			return s.wrap("stat", name, err)
		}
		info = store.Info{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}
		return nil
	})
	return info, err
}

// Chtimes sets the modification time of an object (SFTP's SETSTAT, whole
// seconds; the access time is set to the same). It is an optional
// capability beside the store interface: pkgsign keeps the time of a
// package it rewrites, so that signing does not change what pkgrun's age
// check considers up to date.
func (s *Store) Chtimes(ctx context.Context, name string, mtime time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckName(name); err != nil {
		return fmt.Errorf("chtimes in %s: %w", s.url, err)
	}
	return s.with(ctx, "chtimes", name, func(c *sftp.Client) error {
		if err := c.Chtimes(s.path(name), mtime, mtime); err != nil {
			return s.wrap("chtimes", name, err)
		}
		return nil
	})
}

// errStop carries fn's error out of the walk unchanged.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

// List walks the directories that can hold names starting with prefix.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("list in %s: %w", s.url, err)
	}
	start := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = prefix[:i]
	}
	err := s.with(ctx, "list", prefix, func(c *sftp.Client) error {
		return s.walk(ctx, c, start, prefix, fn, true)
	})
	var stop errStop
	if errors.As(err, &stop) {
		return stop.err
	}
	return err
}

func (s *Store) walk(ctx context.Context, c *sftp.Client, rel, prefix string, fn func(store.Info) error, top bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := c.ReadDirContext(ctx, path.Join(s.dir, rel))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && top {
			return nil // nothing stored under this prefix yet
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while listing
		}
		return s.wrap("list", rel+"/", err)
	}
	for _, fi := range entries {
		if strings.HasPrefix(fi.Name(), store.TempPrefix) {
			continue
		}
		name := fi.Name()
		if rel != "" {
			name = rel + "/" + fi.Name()
		}
		switch {
		case fi.IsDir():
			if strings.HasPrefix(name+"/", prefix) || strings.HasPrefix(prefix, name+"/") {
				if err := s.walk(ctx, c, name, prefix, fn, false); err != nil {
					return err
				}
			}
		case fi.Mode()&fs.ModeSymlink != 0 && strings.HasPrefix(name, prefix):
			// Category directories hold symlinks to ../All; report
			// those that lead to a file, as Get and Stat follow them.
			target, err := c.Stat(path.Join(s.dir, name))
			if err != nil || !target.Mode().IsRegular() {
				continue
			}
			if err := fn(store.Info{Name: name, Size: target.Size(), ModTime: target.ModTime()}); err != nil {
				return errStop{err}
			}
		case fi.Mode().IsRegular() && strings.HasPrefix(name, prefix):
			if err := fn(store.Info{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
				return errStop{err}
			}
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
		return fmt.Errorf("delete in %s: %w", s.url, err)
	}
	return s.with(ctx, "delete", name, func(c *sftp.Client) error {
		fi, err := c.Lstat(s.path(name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return s.wrap("delete", name, err)
		}
		if fi.IsDir() {
			return nil // a directory is not an object
		}
		if err := c.Remove(s.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return s.wrap("delete", name, err)
		}
		return nil
	})
}
