//go:build !unix

package filestore

import (
	"fmt"
	"os"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

func readFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file", path, store.ErrNotExist)
	}
	return os.ReadFile(path)
}
