package dag

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel, every 50 ms while SQLite fills the file
// at path, to start writing its dirty pages to disk, so the final fsync
// waits for the tail only instead of the whole 200 MB. It returns a func
// that stops it. Failures only lose the speed-up.
func startWriteback(path string) (stop func()) {
	f, err := os.Open(path)
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		defer f.Close()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
