package pkgfile

import (
	"bytes"
	"io"
	"testing"

	"github.com/ulikunitz/xz"
)

func xzOf(t testing.TB, data []byte, blockSize int64) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := xz.WriterConfig{BlockSize: blockSize}.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// FuzzXZGuard: whatever the input, the guard does not panic, passes a
// prefix of it on unchanged, and ends cleanly only after all of it.
func FuzzXZGuard(f *testing.F) {
	text := bytes.Repeat([]byte("pkgsrc binary package metadata\n"), 300)
	one := xzOf(f, text, 0)
	f.Add(one)
	f.Add(xzOf(f, text, 2000)) // several blocks
	f.Add(append(append(append([]byte{}, one...), 0, 0, 0, 0), one...))
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		g := newXZGuard(bytes.NewReader(data), 1<<20)
		_, err := io.Copy(&out, g)
		if !bytes.HasPrefix(data, out.Bytes()) {
			t.Fatalf("passed %d bytes that are not the input's", out.Len())
		}
		if err == nil && out.Len() != len(data) {
			t.Fatalf("clean end after %d of %d bytes", out.Len(), len(data))
		}
	})
}
