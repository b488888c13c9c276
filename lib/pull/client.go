package pull

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClientConfig says how a worker reaches the server.
type ClientConfig struct {
	// URL is the server's base URL, https://host:port.
	URL string
	// Fingerprint is the hex SHA-256 of the server certificate (DER), as
	// pkgsched prints it for a self-signed certificate; colons and case
	// are ignored. When set, only that certificate is accepted (no CA,
	// no host name check).
	Fingerprint string
	// CAFile is a PEM file of CA certificates to trust instead of the
	// system roots (used when Fingerprint is empty).
	CAFile string
	// Timeout bounds each request but a lease poll and an object transfer
	// (default 1 minute).
	Timeout time.Duration
}

// Client talks to one server on behalf of one worker. It is safe for use
// by several goroutines (a heartbeat beside an upload).
type Client struct {
	base    *url.URL
	http    *http.Client
	timeout time.Duration

	mu      sync.Mutex
	session string
}

// APIError is an error response of the server.
type APIError struct {
	Status int    // HTTP status
	Code   string // Error.Code
	Msg    string // Error.Message
	Op     string // the request, e.g. "POST /v1/heartbeat"
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: %d %s: %s", e.Op, e.Status, e.Code, e.Msg)
}

// IsFenced reports whether err says the lease is no longer the job's
// current lease: the worker must stop the build and drop its objects.
func IsFenced(err error) bool { return hasCode(err, CodeFenced) }

// IsSkew reports whether err is a skew refusal (tree revision or platform).
func IsSkew(err error) bool { return hasCode(err, CodeSkew) }

// IsUnauthorized reports whether the session or token is not (or no
// longer) valid: revoked, ended or unknown. The worker must register again
// or stop.
func IsUnauthorized(err error) bool {
	return hasCode(err, CodeUnauthorized) || hasCode(err, CodeRevoked) || hasCode(err, CodeGone)
}

// IsForbidden reports whether an object request was refused as outside
// the lease's scope (or outside what workers may read).
func IsForbidden(err error) bool { return hasCode(err, CodeOutOfScope) }

// IsNotExist reports whether a read found no such object.
func IsNotExist(err error) bool { return hasCode(err, CodeNotFound) }

// IsNoSpace reports whether the server stopped giving the worker jobs
// because it ran out of disk space.
func IsNoSpace(err error) bool { return hasCode(err, CodeNoSpace) }

func hasCode(err error, code string) bool {
	var a *APIError
	return errors.As(err, &a) && a.Code == code
}

// NewClient checks cfg and makes a client. It does not connect.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("pull server URL %q: %w", cfg.URL, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("pull server URL %q: want https://host:port", cfg.URL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case cfg.Fingerprint != "":
		want, err := ParseFingerprint(cfg.Fingerprint)
		if err != nil {
			return nil, err
		}
		// The pinned certificate is the trust: no CA, no name check.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("pull server sent no certificate")
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(got[:], want) != 1 {
				return fmt.Errorf("pull server certificate fingerprint %s does not match the pinned %s", hex.EncodeToString(got[:]), hex.EncodeToString(want))
			}
			return nil
		}
	case cfg.CAFile != "":
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("pull server CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("pull server CA %s: no PEM certificate in it", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 30 * time.Second,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	return &Client{base: u, http: &http.Client{Transport: tr}, timeout: timeout}, nil
}

// ParseFingerprint reads a hex SHA-256 fingerprint (colons, spaces and case
// ignored).
func ParseFingerprint(s string) ([]byte, error) {
	clean := strings.NewReplacer(":", "", " ", "", "\n", "").Replace(strings.TrimPrefix(strings.TrimSpace(s), "sha256:"))
	b, err := hex.DecodeString(clean)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("certificate fingerprint %q: want the 64 hex digits of a SHA-256", s)
	}
	return b, nil
}

// Fingerprint is the hex SHA-256 of a DER certificate, as ParseFingerprint
// reads it.
func Fingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}

// CloseIdle closes idle connections (at the end, or after a network
// change).
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

// Session is the session the client holds ("" before Register).
func (c *Client) Session() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// Register trades the token for a session, which the client keeps for
// the later requests.
func (c *Client) Register(ctx context.Context, req RegisterRequest) (*RegisterResponse, error) {
	if req.Version == 0 {
		req.Version = ProtocolVersion
	}
	var resp RegisterResponse
	if _, err := c.do(ctx, http.MethodPost, PathRegister, nil, req, &resp, c.timeout); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.session = resp.Session
	c.mu.Unlock()
	return &resp, nil
}

// Poll waits for a lease, at most req.Wait (plus a margin). It returns
// nil and no error when none came.
func (c *Client) Poll(ctx context.Context, req LeaseRequest) (*Lease, error) {
	var l Lease
	wait := req.Wait.D()
	if wait <= 0 {
		wait = DefaultPollWait
	}
	st, err := c.do(ctx, http.MethodPost, PathLease, nil, req, &l, wait+c.timeout)
	if err != nil {
		return nil, err
	}
	if st == http.StatusNoContent {
		return nil, nil
	}
	return &l, nil
}

// LeaseRef names a lease in a request.
type LeaseRef struct {
	ID      string
	Attempt int
}

// Ref is l's reference.
func (l *Lease) Ref() LeaseRef { return LeaseRef{ID: l.ID, Attempt: l.Attempt} }

// Heartbeat keeps the lease alive.
func (c *Client) Heartbeat(ctx context.Context, ref LeaseRef, req HeartbeatRequest) (*HeartbeatResponse, error) {
	var r HeartbeatResponse
	if _, err := c.do(ctx, http.MethodPost, PathHeartbeat, &ref, req, &r, c.timeout); err != nil {
		return nil, err
	}
	return &r, nil
}

// Upload sends one object of the lease (name as pkgrun wrote it into its
// store: All/foo-1.0.tgz, bulklog/foo-1.0/build.log, index/foo-1.0.pkginfo)
// with its size and hex SHA-256 (sum may be "").
func (c *Client) Upload(ctx context.Context, ref LeaseRef, name string, r io.Reader, size int64, sum string) error {
	if size < 0 {
		return fmt.Errorf("upload %s: size unknown", name)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.url(PathObject+name), r)
	if err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if sum != "" {
		req.Header.Set(HeaderSHA256, sum)
	}
	c.auth(req, &ref)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	defer resp.Body.Close()
	return c.check(resp, "PUT "+PathObject+name)
}

// Report sends pkgrun's result of the lease.
func (c *Client) Report(ctx context.Context, ref LeaseRef, rep ResultReport) (*ResultResponse, error) {
	var r ResultResponse
	if _, err := c.do(ctx, http.MethodPost, PathResult, &ref, rep, &r, 10*c.timeout); err != nil {
		return nil, err
	}
	return &r, nil
}

// Release gives the lease back unfinished.
func (c *Client) Release(ctx context.Context, ref LeaseRef, reason string) error {
	_, err := c.do(ctx, http.MethodPost, PathRelease, &ref, ReleaseRequest{Reason: reason}, nil, c.timeout)
	return err
}

// Fetch opens a finished package (All/<PKGNAME><suffix>) that a build
// needs. The caller closes the reader.
func (c *Client) Fetch(ctx context.Context, name string) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(PathObject+name), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch %s: %w", name, err)
	}
	c.auth(req, nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch %s: %w", name, err)
	}
	if err := c.check(resp, "GET "+PathObject+name); err != nil {
		resp.Body.Close()
		return nil, 0, err
	}
	return resp.Body, resp.ContentLength, nil
}

// Stat returns the size and modification time (second precision) of a
// finished object, or an error for which IsNotExist is true.
func (c *Client) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.url(PathObject+name), nil)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", name, err)
	}
	c.auth(req, nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return ObjectInfo{}, &APIError{Status: 404, Code: CodeNotFound, Msg: name + ": no such object", Op: "HEAD " + PathObject + name}
	}
	if err := c.check(resp, "HEAD "+PathObject+name); err != nil {
		return ObjectInfo{}, err
	}
	info := ObjectInfo{Name: name, Size: resp.ContentLength}
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		info.ModTime = t
	}
	return info, nil
}

// List lists the finished objects whose names start with prefix (under
// All/ or index/).
func (c *Client) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(PathList)+"?prefix="+url.QueryEscape(prefix), nil)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	c.auth(req, nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	defer resp.Body.Close()
	if err := c.check(resp, "GET "+PathList); err != nil {
		return nil, err
	}
	var l ObjectList
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		return nil, fmt.Errorf("list %s: bad answer: %w", prefix, err)
	}
	return l.Objects, nil
}

// Bye ends the session.
func (c *Client) Bye(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodPost, PathBye, nil, struct{}{}, nil, c.timeout)
	return err
}

func (c *Client) url(path string) string {
	u := *c.base
	u.Path += path
	return u.String()
}

func (c *Client) auth(req *http.Request, ref *LeaseRef) {
	if s := c.Session(); s != "" {
		req.Header.Set("Authorization", "Bearer "+s)
	}
	if ref != nil {
		req.Header.Set(HeaderLease, ref.ID)
		req.Header.Set(HeaderAttempt, strconv.Itoa(ref.Attempt))
	}
}

// do sends a JSON request and decodes a JSON answer into out (unless nil
// or 204). It returns the HTTP status.
func (c *Client) do(ctx context.Context, method, path string, ref *LeaseRef, in, out any, timeout time.Duration) (int, error) {
	op := method + " " + path
	body, err := json.Marshal(in)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	c.auth(req, ref)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	if err := c.check(resp, op); err != nil {
		return resp.StatusCode, err
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxResultBody)).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s: bad answer: %w", op, err)
	}
	return resp.StatusCode, nil
}

// check turns an error status into an *APIError.
func (c *Client) check(resp *http.Response, op string) error {
	if resp.StatusCode < 300 {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var e Error
	if json.Unmarshal(b, &e) != nil || e.Code == "" {
		e = Error{Code: strconv.Itoa(resp.StatusCode), Message: strings.TrimSpace(string(b))}
	}
	return &APIError{Status: resp.StatusCode, Code: e.Code, Msg: e.Message, Op: op}
}
