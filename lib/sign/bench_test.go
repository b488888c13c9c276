package sign

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkSign signs a 20 MB package (hash, signature, container) into
// memory; BenchmarkVerify checks it (structure, signature, every block).
// go test -run XXX -bench . -benchtime 20x ./lib/sign
func BenchmarkSign(b *testing.B) {
	s, p, _ := benchSetup(b)
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	b.SetBytes(fi.Size())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := SignPackage(io.Discard, f, fi.Size(), p, Stat{ModTime: time.Unix(1, 0), Mode: 0o100644}, s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	s, p, _ := benchSetup(b)
	f, _ := os.Open(p)
	fi, _ := f.Stat()
	var buf bytes.Buffer
	if _, err := SignPackage(&buf, f, fi.Size(), p, Stat{Mode: 0o100644}, s); err != nil {
		b.Fatal(err)
	}
	f.Close()
	signed := buf.Bytes()
	v := s.Verifier()
	b.SetBytes(int64(len(signed)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := VerifyPackage("bench", bytes.NewReader(signed), v)
		if err != nil || !res.OK() {
			b.Fatal(err, res)
		}
	}
}

func benchSetup(b *testing.B) (Signer, string, []byte) {
	x := testX509(b)
	s, err := LoadX509Signer(x.LeafKey, x.Leaf, nil)
	if err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(b.TempDir(), "bench-1.0.tgz")
	pkg := makePackage(b, p, "bench-1.0", 20_000_001, 9)
	return s, p, pkg
}

// BenchmarkSignFiles signs 10 unsigned 2 MB packages in place (read, hash,
// sign, write, fsync, verify, rename), with 1 and 2 jobs.
func BenchmarkSignFiles(b *testing.B) {
	x := testX509(b)
	s, err := LoadX509Signer(x.LeafKey, x.Leaf, nil)
	if err != nil {
		b.Fatal(err)
	}
	src := b.TempDir()
	var pkgs [][]byte
	var total int64
	for i := 0; i < 10; i++ {
		p := makePackage(b, filepath.Join(src, "p.tgz"), "benchfiles-1.0", 2_000_001+i, uint64(i))
		pkgs = append(pkgs, p)
		total += int64(len(p))
	}
	for _, jobs := range []int{1, 2} {
		b.Run(fmt.Sprintf("jobs=%d", jobs), func(b *testing.B) {
			b.SetBytes(total)
			dir := b.TempDir()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				var files []string
				for k, p := range pkgs {
					f := filepath.Join(dir, fmt.Sprintf("benchfiles%d-1.0.tgz", k))
					if err := os.WriteFile(f, p, 0o644); err != nil {
						b.Fatal(err)
					}
					files = append(files, f)
				}
				b.StartTimer()
				rep, err := SignFiles(context.Background(), files, s, Options{Jobs: jobs})
				if err != nil || rep.Signed != len(files) {
					b.Fatal(err, rep)
				}
			}
		})
	}
}
