package report

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/multistream"
)

// Files are the names WriteDir writes, in the order it writes them.
var Files = []string{"report", "report.bz2", "pbuild", "success", "error", "status", "report.txt", "report.html", "report.dot"}

// WriteDir writes every report file into dir (created if missing). All
// files are first written under temporary names and fsynced; only then
// are they renamed into place and the directory fsynced, so an error
// leaves the previous reports as they were. Times are formatted in loc.
// report and report.bz2 are written in one pass over the records.
func WriteDir(ctx context.Context, dir string, d *sql.DB, b *Build, loc *time.Location) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report directory: %w", err)
	}
	temps := map[string]*tempFile{}
	defer func() {
		for _, t := range temps {
			t.abort()
		}
	}()
	for _, name := range Files {
		t, err := newTemp(dir, name)
		if err != nil {
			return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
		}
		temps[name] = t
	}
	writers := map[string]func(io.Writer) error{
		"report": func(w io.Writer) error {
			// Streams of nine blocks, as before lib/multistream: a
			// report is large enough to keep every core busy with them.
			bz2 := multistream.Bzip2
			bz2.Chunk = 9 * 900 * 1000
			zw := multistream.NewWriter(temps["report.bz2"].w, bz2, 0)
			if err := WriteReport(ctx, io.MultiWriter(w, zw), d, b); err != nil {
				zw.Close()
				return err
			}
			return zw.Close()
		},
		"pbuild":      func(w io.Writer) error { return WritePbuild(w, b) },
		"success":     func(w io.Writer) error { return WriteSuccess(w, b) },
		"error":       func(w io.Writer) error { return WriteError(w, b) },
		"status":      func(w io.Writer) error { return WriteStatus(w, b, loc) },
		"report.txt":  func(w io.Writer) error { return WriteText(w, b, loc) },
		"report.html": func(w io.Writer) error { return WriteHTML(w, b, loc) },
		"report.dot":  func(w io.Writer) error { return WriteDot(w, b) },
	}
	for _, name := range Files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if fill := writers[name]; fill != nil {
			if err := fill(temps[name].w); err != nil {
				return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
			}
		}
	}
	for _, name := range Files {
		if err := temps[name].finish(); err != nil {
			return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
		}
	}
	for _, name := range Files {
		if err := os.Rename(temps[name].f.Name(), filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
		}
		delete(temps, name)
	}
	df, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer df.Close()
	if err := df.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// tempFile is one report file being written under a temporary name.
type tempFile struct {
	f      *os.File
	w      *bufio.Writer
	closed bool
}

func newTemp(dir, name string) (*tempFile, error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return nil, err
	}
	return &tempFile{f: f, w: bufio.NewWriterSize(f, 1<<16)}, nil
}

// finish flushes, fsyncs and closes the file.
func (t *tempFile) finish() error {
	err := t.w.Flush()
	if err == nil {
		err = t.f.Chmod(0o644)
	}
	if err == nil {
		err = t.f.Sync()
	}
	if cerr := t.f.Close(); err == nil {
		err = cerr
	}
	t.closed = true
	return err
}

// abort removes a temporary file that was not renamed into place.
func (t *tempFile) abort() {
	if !t.closed {
		t.f.Close()
	}
	os.Remove(t.f.Name())
}
