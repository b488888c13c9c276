package report

import (
	"bytes"
	"compress/bzip2"
	"fmt"
	"io"
	"os/exec"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

func TestBz2Writer(t *testing.T) {
	// Small streams keep the test fast; the stream size does not change
	// the format.
	const chunk = 100 << 10
	var big bytes.Buffer
	for i := 0; big.Len() < 5*chunk+12345; i++ {
		fmt.Fprintf(&big, "PKGNAME=pkg%d-1.0\nPKG_DEPTH=%d\nBUILD_STATUS=done\n", i, i%97)
	}
	tests := []struct {
		name   string
		in     []byte
		writes int // split the input into this many writes
	}{
		{"empty", nil, 1},
		{"small", []byte("PKGNAME=a-1\n"), 1},
		{"six streams", big.Bytes(), 7},
		{"exact chunk", big.Bytes()[:chunk], 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			zw := newBz2Writer(&out)
			zw.chunk = chunk
			step := len(tt.in)/tt.writes + 1
			for p := tt.in; len(p) > 0; {
				k := min(step, len(p))
				if _, err := zw.Write(p[:k]); err != nil {
					t.Fatal(err)
				}
				p = p[k:]
			}
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			if want := max(1, (len(tt.in)+chunk-1)/chunk); bytes.Count(out.Bytes(), []byte("BZh9")) < want {
				t.Errorf("fewer than %d bzip2 streams", want)
			}
			got, err := io.ReadAll(bzip2.NewReader(bytes.NewReader(out.Bytes())))
			if err != nil {
				t.Fatalf("compress/bzip2: %v", err)
			}
			if !bytes.Equal(got, tt.in) {
				t.Errorf("compress/bzip2 read %d bytes back, want %d", len(got), len(tt.in))
			}
			if _, err := exec.LookPath("bzip2"); err != nil {
				testenv.Skip(t, "bzip2", "bzip2 is not installed")
			}
			cmd := exec.Command("bzip2", "-dc")
			cmd.Stdin = bytes.NewReader(out.Bytes())
			got, err = cmd.Output()
			if err != nil {
				t.Fatalf("bzip2 -dc: %v", err)
			}
			if !bytes.Equal(got, tt.in) {
				t.Errorf("bzip2 -dc read %d bytes back, want %d", len(got), len(tt.in))
			}
		})
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n--; f.n < 0 {
		return 0, io.ErrShortWrite
	}
	return len(p), nil
}

func TestBz2WriterError(t *testing.T) {
	zw := newBz2Writer(&failWriter{n: 1})
	zw.chunk = 1000
	data := bytes.Repeat([]byte("x"), 30*zw.chunk+1)
	_, werr := zw.Write(data)
	cerr := zw.Close()
	if werr == nil && cerr == nil {
		t.Fatal("no error from a failing underlying writer")
	}
}
