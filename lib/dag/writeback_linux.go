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

// dropCache asks the kernel, in the background, to drop the cached pages
// of the database at path that the new one will replace. Replacing a file
// frees its inode inside rename(2), and evicting 200 MB of cached pages
// there took 40 of the rename's 100 ms, at the very end of the run; done
// now it overlaps with the build. Only clean pages are dropped, so nothing
// is lost, and the few pages the history carry-over reads come back from
// disk. The returned channel is closed when it is done (the rename waits
// for it so that the old file is not held open). Failures only lose the
// speed-up.
func dropCache(path string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.Open(path)
		if err != nil {
			return
		}
		defer f.Close()
		_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	}()
	return done
}
