// Package s3store keeps a store in an S3-compatible bucket (AWS S3,
// MinIO, Ceph RGW, versitygw, ...) through github.com/minio/minio-go/v7.
// Object "All/x.tgz" of s3://bucket/prefix is the key "prefix/All/x.tgz".
//
// Atomicity: S3 makes an object visible only once its PUT (or multipart
// upload) completes, so readers see the old or the new object; a failed
// upload is aborted and leaves the old object. Streams of unknown size go
// up in 16 MiB parts (objects up to 160 GiB).
//
// minio-go's own retries are switched off: the retry decorator
// (lib/store/retry) is the one place that retries, and it leaves
// authentication failures and missing buckets alone (store.ErrPermanent).
package s3store

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

// Config says where the bucket is and how to authenticate.
type Config struct {
	Bucket string
	Prefix string // key prefix without leading or trailing "/"; may be ""
	// Endpoint is a URL (https://s3.example.org, http://127.0.0.1:9000)
	// or a bare host[:port] (https). Empty means AWS (s3.amazonaws.com).
	Endpoint string
	Region   string // empty: ask the server
	// Creds are the credentials; nil means anonymous access.
	Creds *credentials.Credentials
	// AllowHTTP permits a plain-http endpoint that is not on loopback.
	AllowHTTP bool
	// Timeout bounds connecting to the endpoint (default 15s).
	Timeout time.Duration
	// NoCheck skips New's check that the bucket exists and is
	// accessible; errors then surface on the first call.
	NoCheck bool
}

// ParseURL reads s3://bucket[/prefix][?endpoint=URL&region=R] into a
// Config (without credentials).
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("s3 URL: %w", err)
	}
	if u.Scheme != "s3" {
		return Config{}, fmt.Errorf("s3 URL %s: scheme is not s3", u.Redacted())
	}
	if u.User != nil {
		return Config{}, fmt.Errorf("s3 URL %s: credentials do not belong in the URL; use the flags or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", u.Redacted())
	}
	c := Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
	if c.Bucket == "" {
		return Config{}, fmt.Errorf("s3 URL %s: no bucket (s3://bucket/prefix)", raw)
	}
	if c.Prefix != "" {
		if err := store.CheckName(c.Prefix); err != nil {
			return Config{}, fmt.Errorf("s3 URL %s: prefix: %w", raw, err)
		}
	}
	q := u.Query()
	for k := range q {
		if k != "endpoint" && k != "region" {
			return Config{}, fmt.Errorf("s3 URL %s: unknown parameter %q (endpoint and region are known)", raw, k)
		}
	}
	c.Endpoint, c.Region = q.Get("endpoint"), q.Get("region")
	return c, nil
}

// endpoint splits the configured endpoint into host[:port] and TLS use.
func (c Config) endpoint() (host string, secure bool, err error) {
	ep := c.Endpoint
	if ep == "" {
		return "s3.amazonaws.com", true, nil
	}
	if !strings.Contains(ep, "://") {
		return ep, true, nil
	}
	u, err := url.Parse(ep)
	if err != nil {
		return "", false, fmt.Errorf("s3 endpoint %q: %w", ep, err)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", false, fmt.Errorf("s3 endpoint %q: want scheme://host[:port] only", ep)
	}
	switch u.Scheme {
	case "https":
		return u.Host, true, nil
	case "http":
		if !c.AllowHTTP && !isLoopback(u.Hostname()) {
			return "", false, fmt.Errorf("s3 endpoint %q: plain http is allowed only on loopback (or with the allow-http option), since it exposes the data", ep)
		}
		return u.Host, false, nil
	}
	return "", false, fmt.Errorf("s3 endpoint %q: scheme must be http or https", ep)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// URL returns the store's URL, with the endpoint if one was given.
func (c Config) URL() string {
	s := "s3://" + c.Bucket + "/" + c.Prefix
	if c.Endpoint != "" {
		s += "?endpoint=" + c.Endpoint
	}
	return s
}

// Store is a store.Store in an S3 bucket.
type Store struct {
	cfg       Config
	url       string
	client    *minio.Client
	transport *http.Transport
}

var _ store.Store = (*Store)(nil)

// New checks that the bucket exists and is accessible, and returns the
// store.
func New(ctx context.Context, cfg Config) (*Store, error) {
	host, secure, err := cfg.endpoint()
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, err
	}
	tr.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = timeout
	tr.ResponseHeaderTimeout = 5 * time.Minute
	creds := cfg.Creds
	if creds == nil {
		creds = credentials.New(&credentials.Static{}) // anonymous
	}
	client, err := minio.New(host, &minio.Options{
		Creds:      creds,
		Secure:     secure,
		Region:     cfg.Region,
		Transport:  tr,
		MaxRetries: 1, // retrying is lib/store/retry's job
	})
	if err != nil {
		return nil, fmt.Errorf("s3 store %s: %w", cfg.URL(), err)
	}
	s := &Store{cfg: cfg, url: cfg.URL(), client: client, transport: tr}
	if cfg.NoCheck {
		return s, nil
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ok, err := client.BucketExists(cctx, cfg.Bucket)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, s.wrap("", "", err)
	}
	if !ok {
		return nil, store.Permanent(fmt.Errorf("s3 store %s: bucket %q does not exist at endpoint %s", s.url, cfg.Bucket, client.EndpointURL()))
	}
	return s, nil
}

// String returns the s3:// URL.
func (s *Store) String() string { return s.url }

// Close releases idle connections.
func (s *Store) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

func (s *Store) key(name string) string {
	if s.cfg.Prefix == "" {
		return name
	}
	return s.cfg.Prefix + "/" + name
}

// authCodes are S3 error codes that retrying cannot fix.
var authCodes = map[string]bool{
	"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
	"ExpiredToken": true, "InvalidToken": true, "InvalidBucketName": true,
	"AuthorizationHeaderMalformed": true, "AllAccessDisabled": true,
}

func (s *Store) wrap(op, name string, err error) error {
	what := op + " " + name
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey" || (resp.Code == "NotFound" && name != ""):
		err = fmt.Errorf("%w (%v)", store.ErrNotExist, err)
	case resp.Code == "NoSuchBucket":
		err = store.Permanent(fmt.Errorf("bucket %q does not exist at endpoint %s: %w", s.cfg.Bucket, s.client.EndpointURL(), err))
	case authCodes[resp.Code]:
		err = store.Permanent(fmt.Errorf("access to bucket %q at %s refused (check the credentials): %w", s.cfg.Bucket, s.client.EndpointURL(), err))
	case resp.StatusCode == http.StatusForbidden:
		err = store.Permanent(fmt.Errorf("access to bucket %q at %s refused (check the credentials): %w", s.cfg.Bucket, s.client.EndpointURL(), err))
	}
	if name == "" { // New's bucket check
		return fmt.Errorf("s3 store %s: %w", s.url, err)
	}
	return fmt.Errorf("%s in %s: %w", what, s.url, err)
}

// Put uploads r; S3 publishes the object only when the upload completes.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckName(name); err != nil {
		return fmt.Errorf("put to %s: %w", s.url, err)
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: 16 << 20}
	info, err := s.client.PutObject(ctx, s.cfg.Bucket, s.key(name), store.CtxReader(ctx, r), size, opts)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return s.wrap("put", name, err)
	}
	if size >= 0 && info.Size != size {
		return s.wrap("put", name, fmt.Errorf("stored %d bytes, expected %d", info.Size, size))
	}
	return nil
}

// Get opens name for reading.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := store.CheckName(name); err != nil {
		return nil, fmt.Errorf("get from %s: %w", s.url, err)
	}
	// One GET both finds out whether the object exists and streams it,
	// so the bytes all belong to one version. (minio.Object would stat
	// first and then read with If-Match, failing when a Put lands in
	// between.)
	rc, _, _, err := minio.Core{Client: s.client}.GetObject(ctx, s.cfg.Bucket, s.key(name), minio.GetObjectOptions{})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, s.wrap("get", name, err)
	}
	return rc, nil
}

// Stat describes name.
func (s *Store) Stat(ctx context.Context, name string) (store.Info, error) {
	if err := ctx.Err(); err != nil {
		return store.Info{}, err
	}
	if err := store.CheckName(name); err != nil {
		return store.Info{}, fmt.Errorf("stat in %s: %w", s.url, err)
	}
	oi, err := s.client.StatObject(ctx, s.cfg.Bucket, s.key(name), minio.StatObjectOptions{})
	if err != nil {
		if ctx.Err() != nil {
			return store.Info{}, ctx.Err()
		}
		return store.Info{}, s.wrap("stat", name, err)
	}
	return store.Info{Name: name, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// List lists the keys under the store's prefix plus prefix, recursively.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("list in %s: %w", s.url, err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio's lister goroutine if fn fails
	root := ""
	if s.cfg.Prefix != "" {
		root = s.cfg.Prefix + "/"
	}
	for oi := range s.client.ListObjects(lctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: root + prefix, Recursive: true}) {
		if oi.Err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return s.wrap("list", prefix, oi.Err)
		}
		name := strings.TrimPrefix(oi.Key, root)
		if store.CheckName(name) != nil {
			continue // directory markers and keys no Put could write
		}
		if err := fn(store.Info{Name: name, Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Delete removes name; S3 reports success for missing keys too.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckName(name); err != nil {
		return fmt.Errorf("delete in %s: %w", s.url, err)
	}
	err := s.client.RemoveObject(ctx, s.cfg.Bucket, s.key(name), minio.RemoveObjectOptions{})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if resp := minio.ToErrorResponse(err); resp.Code == "NoSuchKey" {
			return nil
		}
		return s.wrap("delete", name, err)
	}
	return nil
}
