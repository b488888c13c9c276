package scanner

import "syscall"

// umask reads the process umask (there is no way to read it without
// setting it; scans are not the place for concurrent umask changes).
func umask() uint32 {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return uint32(m)
}
