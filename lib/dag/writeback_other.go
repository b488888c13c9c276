//go:build !linux

package dag

// startWriteback is a no-op where sync_file_range does not exist.
func startWriteback(string) (stop func()) { return func() {} }

// dropCache does nothing where posix_fadvise is not used.
func dropCache(string) <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
