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

	"github.com/dsnet/compress/bzip2"
)

// Files are the names WriteDir writes, in the order it writes them.
var Files = []string{"report", "report.bz2", "pbuild", "success", "error", "status", "report.txt", "report.html", "report.dot"}

// WriteDir writes every report file into dir (created if missing). All
// files are first written under temporary names and fsynced; only then
// are they renamed into place and the directory fsynced, so an error
// leaves the previous reports as they were. Times are formatted in loc.
func WriteDir(ctx context.Context, dir string, d *sql.DB, b *Build, loc *time.Location) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report directory: %w", err)
	}
	writers := map[string]func(io.Writer) error{
		"report": func(w io.Writer) error { return WriteReport(ctx, w, d, b) },
		"report.bz2": func(w io.Writer) error {
			zw, err := bzip2.NewWriter(w, &bzip2.WriterConfig{Level: bzip2.BestCompression})
			if err != nil {
				return err
			}
			if err := WriteReport(ctx, zw, d, b); err != nil {
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
	var temps []string
	defer func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}()
	for _, name := range Files {
		if err := ctx.Err(); err != nil {
			return err
		}
		tmp, err := writeTemp(dir, name, writers[name])
		if tmp != "" {
			temps = append(temps, tmp)
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
		}
	}
	for i, name := range Files {
		if err := os.Rename(temps[i], filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
		}
	}
	temps = nil
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

// writeTemp writes fill's output to a new temporary file beside name and
// fsyncs it; it returns the temporary name also on error, for removal.
func writeTemp(dir, name string, fill func(io.Writer) error) (string, error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return "", err
	}
	bw := bufio.NewWriterSize(f, 1<<16)
	err = fill(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return f.Name(), err
}
