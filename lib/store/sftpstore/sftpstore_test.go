package sftpstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/sftpstore"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
)

func open(t testing.TB, srv *storetest.SSHServer, sub, knownHosts string) (*sftpstore.Store, error) {
	cfg, err := sftpstore.ParseURL(srv.URL(sub))
	if err != nil {
		t.Fatal(err)
	}
	cfg.HostKeyCallback, cfg.HostKeyAlgorithms, err = sftpstore.HostKeyChecker(knownHosts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Auth, _, err = sftpstore.Auth(sftpstore.AuthOptions{IdentityFile: srv.IdentityFile})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = 10 * time.Second
	return sftpstore.New(context.Background(), cfg)
}

func TestSuite(t *testing.T) {
	srv := storetest.StartSSHD(t)
	var n atomic.Int32
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := open(t, srv, fmt.Sprintf("suite%d/store", n.Add(1)), srv.KnownHosts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		url     string
		want    sftpstore.Config
		wantErr string
	}{
		{url: "sftp://pkg@build.example.org/srv/packages", want: sftpstore.Config{User: "pkg", Host: "build.example.org", Dir: "/srv/packages"}},
		{url: "sftp://pkg@[::1]:2222/p/", want: sftpstore.Config{User: "pkg", Host: "::1", Port: 2222, Dir: "/p"}},
		{url: "sftp://pkg@h", want: sftpstore.Config{User: "pkg", Host: "h", Dir: "/"}},
		{url: "sftp://h/dir", wantErr: "no user"},
		{url: "sftp://u:pw@h/dir", wantErr: "passwords"},
		{url: "sftp://u@h:99999/dir", wantErr: "bad port"},
		{url: "sftp://u@/dir", wantErr: "no host"},
	} {
		got, err := sftpstore.ParseURL(c.url)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseURL(%q) error = %v, want %q", c.url, err, c.wantErr)
			}
			continue
		}
		if err != nil || got.User != c.want.User || got.Host != c.want.Host || got.Port != c.want.Port || got.Dir != c.want.Dir {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", c.url, got, err, c.want)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"sftp://u@h/d", "sftp://u@[::1]:22/x", "sftp://u:p@h", "sftp://%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := sftpstore.ParseURL(s)
		if err == nil && (c.Host == "" || c.User == "" || !strings.HasPrefix(c.Dir, "/")) {
			t.Fatalf("ParseURL(%q) accepted %+v", s, c)
		}
	})
}

func BenchmarkStore(b *testing.B) {
	srv := storetest.StartSSHD(b)
	var n atomic.Int32
	storetest.Bench(b, func(b *testing.B) store.Store {
		s, err := open(b, srv, fmt.Sprintf("bench%d", n.Add(1)), srv.KnownHosts)
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}

func TestCategorySymlinks(t *testing.T) {
	srv := storetest.StartSSHD(t)
	s, err := open(t, srv, "links", srv.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Put(ctx, "All/zlib-1.3.tgz", strings.NewReader("pkg"), 3); err != nil {
		t.Fatal(err)
	}
	// The server is on this machine: make the links directly.
	root := filepath.Join(srv.Dir, "links")
	os.Mkdir(filepath.Join(root, "devel"), 0o755)
	if err := os.Symlink("../All/zlib-1.3.tgz", filepath.Join(root, "devel", "zlib-1.3.tgz")); err != nil {
		t.Fatal(err)
	}
	os.Symlink("../All/gone-1.0.tgz", filepath.Join(root, "devel", "gone-1.0.tgz"))
	got := map[string]int64{}
	if err := s.List(ctx, "", func(fi store.Info) error { got[fi.Name] = fi.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["devel/zlib-1.3.tgz"] != 3 {
		t.Errorf("List = %v", got)
	}
}

// A Put cancelled mid-stream closes the connection; its temporary file
// must still go.
func TestCancelledPutLeavesNoTemp(t *testing.T) {
	srv := storetest.StartSSHD(t)
	s, err := open(t, srv, "cancel", srv.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	r := io.MultiReader(strings.NewReader(strings.Repeat("x", 1<<20)), readerFunc(func(p []byte) (int, error) {
		cancel()
		return 0, ctx.Err()
	}))
	if err := s.Put(ctx, "All/big-1.0.tgz", r, -1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put: %v, want context.Canceled", err)
	}
	left, _ := filepath.Glob(filepath.Join(srv.Dir, "cancel", "All", "*"))
	if len(left) != 0 {
		t.Errorf("left behind: %q", left)
	}
	// The store still works on a new connection.
	if err := s.Put(context.Background(), "All/after-1.0.tgz", strings.NewReader("ok"), 2); err != nil {
		t.Errorf("Put after a cancelled Put: %v", err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
