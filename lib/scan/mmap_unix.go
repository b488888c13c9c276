//go:build unix

package scan

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps a regular file read-only. ok is false when it cannot (not a
// regular file, empty, mmap refused): the caller then reads it.
func mapFile(f *os.File) (data []byte, unmap func() error, ok bool) {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() == 0 || st.Size() != int64(int(st.Size())) {
		return nil, nil, false
	}
	data, err = unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, false
	}
	return data, func() error { return unix.Munmap(data) }, true
}
