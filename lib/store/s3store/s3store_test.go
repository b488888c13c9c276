package s3store_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/s3store"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
)

func open(t testing.TB, srv *storetest.S3Server, prefix string) (*s3store.Store, error) {
	cfg, err := s3store.ParseURL(srv.URL(prefix))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Region = srv.Region
	cfg.Creds = credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, "")
	return s3store.New(context.Background(), cfg)
}

func TestSuite(t *testing.T) {
	srv := storetest.StartS3(t)
	var n atomic.Int32
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := open(t, srv, fmt.Sprintf("suite%d/store", n.Add(1)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
	// With no prefix, the bucket itself is the store.
	t.Run("NoPrefix", func(t *testing.T) {
		s, err := open(t, srv, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Put(context.Background(), "All/x-1.tgz", strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
		var names []string
		s.List(context.Background(), "All/", func(fi store.Info) error { names = append(names, fi.Name); return nil })
		if len(names) != 1 || names[0] != "All/x-1.tgz" {
			t.Errorf("List = %q", names)
		}
	})
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		url                      string
		bucket, prefix, endpoint string
		wantErr                  string
	}{
		{url: "s3://pkgs/netbsd/10.0", bucket: "pkgs", prefix: "netbsd/10.0"},
		{url: "s3://pkgs", bucket: "pkgs"},
		{url: "s3://pkgs/p/?endpoint=http://127.0.0.1:9000", bucket: "pkgs", prefix: "p", endpoint: "http://127.0.0.1:9000"},
		{url: "s3:///p", wantErr: "no bucket"},
		{url: "s3://b/../p", wantErr: "prefix"},
		{url: "s3://AKIA:secret@b/p", wantErr: "credentials"},
		{url: "s3://b/p?foo=1", wantErr: "unknown parameter"},
	} {
		got, err := s3store.ParseURL(c.url)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseURL(%q) error = %v, want %q", c.url, err, c.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("ParseURL(%q) error leaks the secret: %v", c.url, err)
			}
			continue
		}
		if err != nil || got.Bucket != c.bucket || got.Prefix != c.prefix || got.Endpoint != c.endpoint {
			t.Errorf("ParseURL(%q) = %+v, %v", c.url, got, err)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"s3://b/p", "s3://b/p?endpoint=http://x:1", "s3://b//x", "s3://%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := s3store.ParseURL(s)
		if err == nil && (c.Bucket == "" || strings.HasPrefix(c.Prefix, "/") || strings.HasSuffix(c.Prefix, "/")) {
			t.Fatalf("ParseURL(%q) accepted %+v", s, c)
		}
	})
}

func BenchmarkStore(b *testing.B) {
	srv := storetest.StartS3(b)
	var n atomic.Int32
	storetest.Bench(b, func(b *testing.B) store.Store {
		s, err := open(b, srv, fmt.Sprintf("bench%d", n.Add(1)))
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}
