package scanner

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// logger serialises everything written to stderr: warnings, passed-on make
// output and, on a terminal, a progress line that is erased before any
// other line and redrawn on the next tick.
type logger struct {
	mu       sync.Mutex
	w        io.Writer
	prefix   string
	progress bool
	drawn    bool
	quit     chan struct{}
	wg       sync.WaitGroup
}

func newLogger(w io.Writer, prefix string, progress bool) *logger {
	return &logger{w: w, prefix: prefix, progress: progress}
}

// warn prints a pbulk-style warning: prefix + msg.
func (l *logger) warn(msg string) { l.line(l.prefix + msg) }

// detail prints a line as it is (indented details, make's stderr).
func (l *logger) detail(msg string) { l.line(msg) }

func (l *logger) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.erase()
	fmt.Fprintln(l.w, s)
}

func (l *logger) erase() {
	if l.drawn {
		io.WriteString(l.w, "\r\x1b[K")
		l.drawn = false
	}
}

func (l *logger) startProgress(s *scanner) {
	if !l.progress || l.quit != nil {
		return
	}
	l.quit = make(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		var start time.Time // when the package scans began: rates exclude the walk
		for {
			select {
			case <-l.quit:
				return
			case <-t.C:
				if total := s.total.Load(); total > 0 {
					if start.IsZero() {
						start = time.Now()
					}
					l.draw(progressLine(s.done.Load(), total, s.reused.Load(), time.Since(start)))
				} else {
					l.draw(fmt.Sprintf("listing categories %d/%d", s.walked.Load(), s.cats.Load()))
				}
			}
		}
	}()
}

func (l *logger) draw(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.w, "\r\x1b[K"+s)
	l.drawn = true
}

// stop ends the progress line for good.
func (l *logger) stop() {
	if l.quit != nil {
		close(l.quit)
		l.wg.Wait()
		l.quit = nil
	}
	l.mu.Lock()
	l.erase()
	l.mu.Unlock()
}

// progressLine renders "done/total, rate, ETA".
func progressLine(done, total, reused int64, elapsed time.Duration) string {
	rate := 0.0
	if secs := elapsed.Seconds(); secs > 0 {
		rate = float64(done) / secs
	}
	eta := "?"
	if rate > 0 && total >= done {
		eta = (time.Duration(float64(total-done) / rate * float64(time.Second))).Round(time.Second).String()
	}
	return fmt.Sprintf("scanning %d/%d (%d reused) %.1f/s ETA %s", done, total, reused, rate, eta)
}
