package ec2test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/imds"
)

// metadata is one instance's metadata service, which its VM reaches at
// 169.254.169.254 (lib/provider/qemu's Config.Metadata): IMDSv2 only, as
// lib/provider/ec2 asks (HttpTokens required). It serves the instance's
// user data itself and passes other metadata paths on to the server's
// metadata mock (amazon-ec2-metadata-mock, the source of spot notices),
// the spot ones only for a spot instance: on EC2 an on-demand instance
// has no spot/instance-action.
type metadata struct {
	userData []byte
	spot     bool
	upstream string // the mock's base URL, "" for none
	srv      *http.Server
	addr     string // host:port
	client   *imds.Client

	mu     sync.Mutex
	tokens map[string]time.Time // session token -> expiry
}

// startMetadata listens on a free loopback port.
func startMetadata(userData []byte, spot bool, upstream string) (*metadata, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	m := &metadata{userData: userData, spot: spot, tokens: map[string]time.Time{}, addr: l.Addr().String()}
	if upstream != "" {
		m.upstream = "http://" + upstream
		m.client = imds.NewClient(imds.Config{URL: m.upstream})
	}
	m.srv = &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}
	go m.srv.Serve(l)
	return m, nil
}

func (m *metadata) close() {
	if m != nil {
		m.srv.Close()
	}
}

const (
	ttlHeader   = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	tokenHeader = "X-Aws-Ec2-Metadata-Token"
)

func (m *metadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == imds.TokenPath {
		if r.Method != http.MethodPut {
			http.Error(w, "405 - Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		ttl, err := strconv.Atoi(r.Header.Get(ttlHeader))
		if err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "400 - Bad Request", http.StatusBadRequest)
			return
		}
		b := make([]byte, 32)
		rand.Read(b)
		tok := base64.StdEncoding.EncodeToString(b)
		m.mu.Lock()
		m.tokens[tok] = time.Now().Add(time.Duration(ttl) * time.Second)
		m.mu.Unlock()
		w.Header().Set(ttlHeader, strconv.Itoa(ttl))
		io.WriteString(w, tok)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "405 - Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	m.mu.Lock()
	exp, ok := m.tokens[r.Header.Get(tokenHeader)]
	m.mu.Unlock()
	if !ok || time.Now().After(exp) {
		http.Error(w, "401 - Unauthorized", http.StatusUnauthorized)
		return
	}
	switch {
	case r.URL.Path == imds.UserDataPath:
		if len(m.userData) == 0 {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(m.userData)
	case m.client == nil, !strings.HasPrefix(r.URL.Path, "/latest/meta-data/"),
		strings.HasPrefix(r.URL.Path, "/latest/meta-data/spot/") && !m.spot:
		http.NotFound(w, r)
	default:
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		b, err := m.client.Get(ctx, r.URL.Path)
		switch {
		case errors.Is(err, imds.ErrNotFound):
			http.NotFound(w, r)
		case err != nil:
			// The mock is not running (yet): the service fails.
			http.Error(w, "503 - Service Unavailable", http.StatusServiceUnavailable)
		default:
			w.Write(b)
		}
	}
}
