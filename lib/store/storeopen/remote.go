package storeopen

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/s3store"
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
	cfg, err := s3store.ParseURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	cfg.Endpoint = first(opts.S3Endpoint, cfg.Endpoint, opts.getenv("AWS_ENDPOINT_URL_S3"), opts.getenv("AWS_ENDPOINT_URL"))
	cfg.Region = first(opts.S3Region, cfg.Region, opts.getenv("AWS_REGION"), opts.getenv("AWS_DEFAULT_REGION"))
	cfg.AllowHTTP = opts.S3AllowHTTP
	cfg.Timeout = opts.connectTimeout()
	switch {
	case opts.S3AccessKey != "" || opts.S3SecretKey != "":
		cfg.Creds = credentials.NewStaticV4(opts.S3AccessKey, opts.S3SecretKey, opts.S3SessionToken)
	case opts.getenv("AWS_ACCESS_KEY_ID") != "":
		cfg.Creds = credentials.NewStaticV4(opts.getenv("AWS_ACCESS_KEY_ID"), opts.getenv("AWS_SECRET_ACCESS_KEY"), opts.getenv("AWS_SESSION_TOKEN"))
	default:
		file := first(opts.getenv("AWS_SHARED_CREDENTIALS_FILE"), filepath.Join(opts.home(), ".aws", "credentials"))
		if _, err := os.Stat(file); err == nil {
			cfg.Creds = credentials.NewFileAWSCredentials(file, first(opts.getenv("AWS_PROFILE"), "default"))
		}
		// Otherwise anonymous: enough for a public bucket.
	}
	return s3store.New(ctx, cfg)
}

// first returns the first non-empty string.
func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
