//go:build !unix

package filestore

import (
	"fmt"
	"os"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

func readFile(path string) ([]byte, int64, time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, time.Time{}, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, time.Time{}, fmt.Errorf("%s: %w: not a regular file", path, store.ErrNotExist)
	}
	b, err := os.ReadFile(path)
	return b, fi.Size(), fi.ModTime(), err
}
