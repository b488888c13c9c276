package storetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

// Bench measures a backend: Put and Get throughput for a small package
// and a large one, Stat latency, and List of a 500-object directory. Run
// it from a backend's test file:
//
//	func BenchmarkStore(b *testing.B) { storetest.Bench(b, newStore) }
func Bench(b *testing.B, newStore func(b *testing.B) store.Store) {
	ctx := context.Background()
	for _, size := range []int{64 << 10, 16 << 20} {
		data := Random(b, size)
		b.Run(fmt.Sprintf("Put/%dKiB", size>>10), func(b *testing.B) {
			s := newStore(b)
			defer s.Close()
			b.SetBytes(int64(size))
			for i := 0; b.Loop(); i++ {
				if err := s.Put(ctx, fmt.Sprintf("All/p%d.tgz", i%8), bytes.NewReader(data), int64(size)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("Get/%dKiB", size>>10), func(b *testing.B) {
			s := newStore(b)
			defer s.Close()
			if err := s.Put(ctx, "All/p.tgz", bytes.NewReader(data), int64(size)); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			for b.Loop() {
				rc, err := s.Get(ctx, "All/p.tgz")
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, rc)
				rc.Close()
				if err != nil || n != int64(size) {
					b.Fatalf("Get: %d bytes, %v", n, err)
				}
			}
		})
	}
	b.Run("Stat", func(b *testing.B) {
		s := newStore(b)
		defer s.Close()
		if err := s.Put(ctx, "All/p.tgz", bytes.NewReader([]byte("x")), 1); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := s.Stat(ctx, "All/p.tgz"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("List500", func(b *testing.B) {
		s := newStore(b)
		defer s.Close()
		for i := range 500 {
			if err := s.Put(ctx, fmt.Sprintf("index/pkg%03d-1.0.pkginfo", i), bytes.NewReader([]byte("PKGNAME=x\n")), -1); err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			n := 0
			if err := s.List(ctx, "index/", func(store.Info) error { n++; return nil }); err != nil || n != 500 {
				b.Fatalf("List: %d, %v", n, err)
			}
		}
	})
}
