package storeopen

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/sftpstore"
)

func (o Options) home() string {
	if h := o.getenv("HOME"); h != "" {
		return h
	}
	h, _ := os.UserHomeDir()
	return h
}

func openSFTP(ctx context.Context, u *url.URL, opts Options) (store.Store, error) {
	cfg, err := sftpstore.ParseURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	known := opts.KnownHosts
	if known == "" {
		known = filepath.Join(opts.home(), ".ssh", "known_hosts")
	}
	cfg.HostKeyCallback, cfg.HostKeyAlgorithms, err = sftpstore.HostKeyChecker(known, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", cfg.URL(), err)
	}
	auth, release, err := sftpstore.Auth(sftpstore.AuthOptions{
		IdentityFile: opts.SSHIdentity,
		AgentSocket:  opts.getenv("SSH_AUTH_SOCK"),
		Home:         opts.home(),
	})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", cfg.URL(), err)
	}
	cfg.Auth, cfg.OnClose, cfg.Timeout = auth, release, opts.connectTimeout()
	s, err := sftpstore.New(ctx, cfg)
	if err != nil {
		release()
		return nil, err
	}
	return s, nil
}

func openS3(ctx context.Context, u *url.URL, opts Options) (store.Store, error) {
	return nil, fmt.Errorf("open store %s: s3 backend not built yet", redact(u))
}
