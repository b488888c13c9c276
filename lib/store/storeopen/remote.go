package storeopen

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

func openSFTP(ctx context.Context, u *url.URL, opts Options) (store.Store, error) {
	return nil, fmt.Errorf("open store %s: %w", redact(u), errors.New("sftp backend not built yet"))
}

func openS3(ctx context.Context, u *url.URL, opts Options) (store.Store, error) {
	return nil, fmt.Errorf("open store %s: %w", redact(u), errors.New("s3 backend not built yet"))
}
