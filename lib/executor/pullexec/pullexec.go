// Package pullexec is the executor of volunteer pull workers: pkgsched
// serves the pull protocol (lib/pull) over HTTPS and every worker that
// polls for a job is a slot. Opened from
//
//	pull://LISTEN_ADDR?cert=FILE&key=FILE&ttl=5m&poll=30s&tree=REV&platform=OPSYS/ARCH
//
// Without cert and key, a self-signed certificate is made once and kept
// beside the database (<db>.pull-cert.pem, <db>.pull-key.pem); its SHA-256
// fingerprint is printed on the log and recorded in the database's meta
// (pull.fingerprint, with pull.url) for pkgsched status, and the worker
// pins it. ttl is the lease time-to-live (a job whose worker stops
// heartbeating is requeued after about that long), poll the longest a
// lease poll is held, tree and platform what workers must match (skew;
// default: the database's meta keys scan.tree_revision and scan.platform
// when present, else unchecked).
package pullexec

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/atomicfile"
	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/executor"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/pull"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
)

// Meta keys written for pkgsched status.
const (
	MetaFingerprint = "pull.fingerprint"
	MetaURL         = "pull.url"
)

// Config configures an executor.
type Config struct {
	DB       *sql.DB     // the build database
	Store    store.Store // the package store (closed by Close when OwnStore)
	OwnStore bool
	Settings job.Settings
	Listen   string // host:port (port 0 picks one)
	// CertFile and KeyFile are the server's certificate; empty: a
	// self-signed one in CertDir (made once, then reused).
	CertFile, KeyFile string
	CertDir           string // prefix of the self-signed files, e.g. /builds/bulk.db
	LeaseTTL          time.Duration
	PollWait          time.Duration
	Tree              string
	Platform          pull.Platform
	Oversubscribe     float64
	Sweep             time.Duration
	Log               io.Writer
}

// Executor serves pull workers.
type Executor struct {
	srv         *pull.Server
	http        *http.Server
	ln          net.Listener
	url         string
	fingerprint string
	ownDB       *sql.DB
	store       store.Store
	done        chan error
}

// New starts serving.
func New(ctx context.Context, cfg Config) (*Executor, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	var cert tls.Certificate
	var err error
	switch {
	case cfg.CertFile != "" || cfg.KeyFile != "":
		if cfg.CertFile == "" || cfg.KeyFile == "" {
			return nil, errors.New("executor pull: give both cert= and key=, or neither for a self-signed certificate")
		}
		cert, err = tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("executor pull: %w", err)
		}
	default:
		if cfg.CertDir == "" {
			return nil, errors.New("executor pull: no certificate and nowhere to keep a self-signed one")
		}
		cert, err = SelfSigned(cfg.CertDir+".pull-cert.pem", cfg.CertDir+".pull-key.pem")
		if err != nil {
			return nil, fmt.Errorf("executor pull: %w", err)
		}
	}
	srv, err := pull.NewServer(ctx, pull.Config{DB: cfg.DB, Store: cfg.Store, Settings: cfg.Settings, LeaseTTL: cfg.LeaseTTL,
		PollWait: cfg.PollWait, Tree: cfg.Tree, Platform: cfg.Platform, Oversubscribe: cfg.Oversubscribe, Sweep: cfg.Sweep, Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("executor pull: listen on %s: %w", cfg.Listen, err)
	}
	if cfg.Tree == "" {
		fmt.Fprintf(cfg.Log, "pull: the scan's tree revision is unknown (pkgdag build --pkgsrc, or tree= here): workers' trees are not checked\n")
	}
	e := &Executor{srv: srv, ln: ln, done: make(chan error, 1)}
	e.fingerprint = "sha256:" + pull.Fingerprint(cert.Certificate[0])
	e.url = "https://" + ln.Addr().String()
	e.http = &http.Server{
		Handler:           srv.Handler(),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		// TLS handshake errors of port scanners are no news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { e.done <- e.http.ServeTLS(ln, "", "") }()
	fmt.Fprintf(cfg.Log, "pkgsched: pull server on %s, certificate fingerprint %s\n", e.url, e.fingerprint)
	for k, v := range map[string]string{MetaFingerprint: e.fingerprint, MetaURL: e.url} {
		if _, err := cfg.DB.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`, k, v); err != nil {
			e.Close()
			return nil, fmt.Errorf("executor pull: record %s: %w", k, err)
		}
	}
	if cfg.OwnStore {
		e.store = cfg.Store
	}
	return e, nil
}

// Open opens pull://LISTEN_ADDR?... for the database at dbPath with the
// run's settings; the store is opened from the settings (its credentials
// stay here).
func Open(ctx context.Context, spec string, settings job.Settings, dbPath string, log io.Writer) (*Executor, error) {
	cfg, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if settings.Store == "" {
		return nil, fmt.Errorf("executor %s: pull workers need a store (--store): their uploads go through it", spec)
	}
	st, err := storeopen.Open(ctx, settings.Store, storeopen.AccessOptions(settings.StoreAccess))
	if err != nil {
		return nil, fmt.Errorf("executor %s: %w", spec, err)
	}
	d, err := db.Open(ctx, dbPath)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("executor %s: %w", spec, err)
	}
	cfg.DB, cfg.Store, cfg.OwnStore, cfg.Settings, cfg.CertDir, cfg.Log = d, st, true, settings, dbPath, log
	if err := scanDefaults(ctx, d, &cfg); err != nil {
		d.Close()
		st.Close()
		return nil, fmt.Errorf("executor %s: %w", spec, err)
	}
	e, err := New(ctx, cfg)
	if err != nil {
		d.Close()
		st.Close()
		return nil, err
	}
	e.ownDB = d
	return e, nil
}

// Meta keys naming the scan's tree revision and platform (OPSYS
// OSVERSION/ARCH), when the tools that made the database recorded them;
// tree= and platform= in the spec win.
const (
	MetaTree     = db.MetaTreeRevision
	MetaPlatform = db.MetaPlatform
)

// scanDefaults fills the skew check from the database's meta where the
// spec left it empty.
func scanDefaults(ctx context.Context, d *sql.DB, cfg *Config) error {
	get := func(k string) (string, error) {
		var v string
		err := d.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, k).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return "", nil
		}
		return v, err
	}
	if cfg.Tree == "" {
		v, err := get(MetaTree)
		if err != nil {
			return err
		}
		cfg.Tree = v
	}
	if cfg.Platform == (pull.Platform{}) {
		v, err := get(MetaPlatform)
		if err != nil || v == "" {
			return err
		}
		p, err := pull.ParsePlatform(v)
		if err != nil {
			return fmt.Errorf("meta %s: %w", MetaPlatform, err)
		}
		cfg.Platform = p
	}
	return nil
}

// ParseSpec reads pull://LISTEN_ADDR?cert=F&key=F&ttl=D&poll=D&tree=REV&platform=OPSYS[ OSVERSION]/ARCH.
func ParseSpec(spec string) (Config, error) {
	var c Config
	u, err := url.Parse(spec)
	if err != nil {
		return c, fmt.Errorf("executor %s: %w", spec, err)
	}
	if u.Scheme != "pull" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return c, fmt.Errorf("executor %s: want pull://LISTEN_ADDR:PORT?cert=FILE&key=FILE&ttl=5m", spec)
	}
	c.Listen = u.Host
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return c, fmt.Errorf("executor %s: listen address %q: %w", spec, c.Listen, err)
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "cert":
			c.CertFile = v
		case "key":
			c.KeyFile = v
		case "ttl", "poll":
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second {
				return c, fmt.Errorf("executor %s: %s=%q: want a Go duration of at least 1s such as 5m", spec, k, v)
			}
			if k == "ttl" {
				c.LeaseTTL = d
			} else {
				c.PollWait = d
			}
		case "tree":
			c.Tree = v
		case "platform":
			p, err := pull.ParsePlatform(v)
			if err != nil {
				return c, fmt.Errorf("executor %s: %w", spec, err)
			}
			c.Platform = p
		default:
			return c, fmt.Errorf("executor %s: unknown setting %q (want cert, key, ttl, poll, tree, platform)", spec, k)
		}
	}
	return c, nil
}

// Acquire waits for a worker's slot.
func (e *Executor) Acquire(ctx context.Context) (executor.Slot, error) {
	sl, err := e.srv.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return sl, nil
}

// Capacity is the slots of the workers connected now.
func (e *Executor) Capacity() int { return e.srv.Capacity() }

// MayGrow is always true: volunteers join when they like, so a ready job
// that the workers of the moment refuse waits for one that takes it
// (executor.Grower) instead of ending the run.
func (e *Executor) MayGrow() bool { return true }

// Name is the executor's name for execopen: "pull:LISTEN_ADDR".
func (e *Executor) Name() string { return "pull:" + e.ln.Addr().String() }

// URL is the address workers use (https://host:port as listened on).
func (e *Executor) URL() string { return e.url }

// Fingerprint is "sha256:<hex>" of the server certificate, for
// pkgrun worker --fingerprint.
func (e *Executor) Fingerprint() string { return e.fingerprint }

// Server is the pull server (tokens, workers).
func (e *Executor) Server() *pull.Server { return e.srv }

// MintToken makes a registration token (see pull.Server.MintToken).
func (e *Executor) MintToken(ctx context.Context, name string, labels map[string]string, oneSession bool) (string, error) {
	return e.srv.MintToken(ctx, name, labels, oneSession)
}

// RevokeToken revokes a token and requeues its worker's jobs.
func (e *Executor) RevokeToken(ctx context.Context, name string) error {
	return e.srv.RevokeToken(ctx, name)
}

// Workers lists the connected workers.
func (e *Executor) Workers() []pull.WorkerInfo { return e.srv.Workers() }

// Retire ends an idle worker's session (see pull.Server.Retire).
func (e *Executor) Retire(name string) bool { return e.srv.Retire(name) }

// Gone requeues the jobs of worker NAME at once: the caller knows its
// machine is dead (see pull.Server.Gone).
func (e *Executor) Gone(name, why string) { e.srv.Gone(name, why) }

// Owns reports whether a slot name is a pull worker's.
func (e *Executor) Owns(worker string) bool { return strings.HasPrefix(worker, "pull:") }

// CleanStale has nothing to remove: a stale job's lease was fenced when
// the server started, and its staged objects removed.
func (e *Executor) CleanStale(ctx context.Context, jobs []executor.StaleJob) ([]executor.Cleaned, error) {
	return nil, nil
}

// Close stops serving; leases still open are revoked.
func (e *Executor) Close() error {
	err := e.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := e.http.Shutdown(ctx); serr != nil {
		e.http.Close()
	}
	if e.ownDB != nil {
		e.ownDB.Close()
	}
	if e.store != nil {
		e.store.Close()
	}
	return err
}

// SelfSigned loads the self-signed certificate kept in certFile and
// keyFile, or makes one (ECDSA P-256, ten years) and writes them (the key
// 0600) when neither exists.
func SelfSigned(certFile, keyFile string) (tls.Certificate, error) {
	_, cerr := os.Stat(certFile)
	_, kerr := os.Stat(keyFile)
	if cerr == nil && kerr == nil {
		return tls.LoadX509KeyPair(certFile, keyFile)
	}
	if cerr == nil || kerr == nil {
		return tls.Certificate{}, fmt.Errorf("self-signed certificate: one of %s and %s is missing; remove the other to make a new pair", certFile, keyFile)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "pkgsched pull server " + host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", host},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("self-signed certificate: %w", err)
	}
	if err := writeFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("self-signed certificate: %w", err)
	}
	return tls.LoadX509KeyPair(certFile, keyFile)
}

// writeFile writes b to path atomically with mode perm (set before any
// byte is written).
func writeFile(path string, b []byte, perm os.FileMode) error {
	f, err := atomicfile.Create(path)
	if err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}
