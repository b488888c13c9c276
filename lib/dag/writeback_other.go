//go:build !linux

package dag

// startWriteback is a no-op where sync_file_range does not exist.
func startWriteback(string) (stop func()) { return func() {} }
