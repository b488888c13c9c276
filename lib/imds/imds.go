// Package imds reads EC2 instance metadata with IMDSv2 (a session token
// from PUT /latest/api/token, sent with every GET) and watches for spot
// interruption notices (GET /latest/meta-data/spot/instance-action: 404
// while there is none, a small JSON document once the instance is to be
// stopped or terminated, two minutes ahead).
//
// A pull worker on a spot machine runs a Watcher (pkgrun worker
// --spot-imds URL) and releases its lease at once when a notice comes,
// instead of letting the lease expire after the machine is gone.
package imds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultURL is the instance-metadata service of an EC2 instance.
const DefaultURL = "http://169.254.169.254"

// Paths of the service.
const (
	TokenPath      = "/latest/api/token"
	SpotActionPath = "/latest/meta-data/spot/instance-action"
	UserDataPath   = "/latest/user-data"
)

// Config configures a Client and a Watcher.
type Config struct {
	// URL is the service's base URL (default DefaultURL).
	URL string
	// Interval is how often a Watcher asks for a notice (default 2s;
	// AWS suggests every 5s, and gives two minutes' warning).
	Interval time.Duration
	// TokenTTL is the session token's lifetime (default 6h, the most
	// IMDSv2 allows).
	TokenTTL time.Duration
	// HTTP is the client to use (default: one with a 2s timeout and no
	// proxy: the service is link-local).
	HTTP *http.Client
	// OnError, when set, is told of failed polls (the Watcher keeps
	// polling).
	OnError func(error)
}

// Notice is a spot interruption notice.
type Notice struct {
	Action string    `json:"action"` // "terminate", "stop" or "hibernate"
	Time   time.Time `json:"time"`   // when it happens
}

// Client talks to the metadata service.
type Client struct {
	cfg Config

	mu      sync.Mutex
	token   string
	expires time.Time
}

// NewClient returns a client for cfg.
func NewClient(cfg Config) *Client {
	if cfg.URL == "" {
		cfg.URL = DefaultURL
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 6 * time.Hour
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	}
	return &Client{cfg: cfg}
}

// maxBody bounds what is read of a reply.
const maxBody = 64 << 10

// sessionToken returns a cached token or fetches a new one.
func (c *Client) sessionToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && time.Now().Before(c.expires) {
		return c.token, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.cfg.URL+TokenPath, nil)
	if err != nil {
		return "", err
	}
	secs := int(c.cfg.TokenTTL / time.Second)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(secs))
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return "", fmt.Errorf("imds: session token: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return "", fmt.Errorf("imds: session token: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("imds: session token: %s", resp.Status)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", errors.New("imds: session token: empty reply")
	}
	c.token = tok
	// Renew a minute early (or halfway for short lifetimes).
	margin := time.Minute
	if c.cfg.TokenTTL < 2*time.Minute {
		margin = c.cfg.TokenTTL / 2
	}
	c.expires = time.Now().Add(c.cfg.TokenTTL - margin)
	return tok, nil
}

func (c *Client) dropToken() {
	c.mu.Lock()
	c.token = ""
	c.mu.Unlock()
}

// Get reads a metadata path with the session token. A 404 is returned as
// (nil, ErrNotFound).
func (c *Client) Get(ctx context.Context, path string) ([]byte, error) {
	for try := 0; ; try++ {
		tok, err := c.sessionToken(ctx)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.URL+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-aws-ec2-metadata-token", tok)
		resp, err := c.cfg.HTTP.Do(req)
		if err != nil {
			return nil, fmt.Errorf("imds: %s: %w", path, err)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		switch {
		case err != nil:
			return nil, fmt.Errorf("imds: %s: %w", path, err)
		case resp.StatusCode == http.StatusOK:
			return b, nil
		case resp.StatusCode == http.StatusNotFound:
			return nil, ErrNotFound
		case resp.StatusCode == http.StatusUnauthorized && try == 0:
			c.dropToken() // expired or the service restarted: once more
			continue
		default:
			return nil, fmt.Errorf("imds: %s: %s", path, resp.Status)
		}
	}
}

// ErrNotFound is Get's error for a path the service does not have.
var ErrNotFound = errors.New("imds: not found")

// UserData returns the instance's user data (ErrNotFound when it has
// none).
func (c *Client) UserData(ctx context.Context) ([]byte, error) {
	return c.Get(ctx, UserDataPath)
}

// SpotNotice returns the pending spot interruption notice, or nil when
// there is none.
func (c *Client) SpotNotice(ctx context.Context) (*Notice, error) {
	b, err := c.Get(ctx, SpotActionPath)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	n, err := ParseNotice(b)
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// ParseNotice reads an instance-action document.
func ParseNotice(b []byte) (Notice, error) {
	var n Notice
	if err := json.Unmarshal(b, &n); err != nil {
		return Notice{}, fmt.Errorf("imds: spot instance-action: %w", err)
	}
	switch n.Action {
	case "terminate", "stop", "hibernate":
	default:
		return Notice{}, fmt.Errorf("imds: spot instance-action: unknown action %q", n.Action)
	}
	if n.Time.IsZero() {
		return Notice{}, errors.New("imds: spot instance-action: no time")
	}
	return n, nil
}

// Watcher polls for a spot interruption notice.
type Watcher struct {
	c *Client
}

// NewWatcher returns a watcher for cfg.
func NewWatcher(cfg Config) *Watcher { return &Watcher{c: NewClient(cfg)} }

// Wait polls until a notice comes and returns it, or returns ctx's error.
// Failed polls (the service unreachable, a bad reply) are reported to
// Config.OnError and do not end the wait.
func (w *Watcher) Wait(ctx context.Context) (Notice, error) {
	t := time.NewTicker(w.c.cfg.Interval)
	defer t.Stop()
	for {
		n, err := w.c.SpotNotice(ctx)
		if n != nil {
			return *n, nil
		}
		if err != nil && ctx.Err() == nil && w.c.cfg.OnError != nil {
			w.c.cfg.OnError(err)
		}
		select {
		case <-ctx.Done():
			return Notice{}, ctx.Err()
		case <-t.C:
		}
	}
}
