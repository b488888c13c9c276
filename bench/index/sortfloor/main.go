// Command sortfloor prints the least CPU time that any bzip2 -9 encoder
// written in Go could spend on a file's block sorts here: it suffix-sorts
// each 900 kB block with index/suffixarray (SA-IS, as fast on this
// machine as libdivsufsort), which is less work than the rotation sort
// bzip2 needs (dsnet/compress sorts each block doubled) and leaves out
// the rest of the encoder (run-length, move-to-front and Huffman coding).
// bench/index/run.sh uses it to show how far below the default merge's
// time an ideal bzip2 encoder could go.
//
// Usage: sortfloor FILE
package main

import (
	"fmt"
	"index/suffixarray"
	"os"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: sortfloor FILE")
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "sortfloor:", err)
		os.Exit(2)
	}
	const block = 900 * 1000
	cpu0 := cpuTime()
	t0 := time.Now()
	blocks := 0
	for off := 0; off < len(data); off += block {
		suffixarray.New(data[off:min(off+block, len(data))])
		blocks++
	}
	fmt.Printf("%d bytes, %d blocks: %.2f s CPU, %.2f s wall\n", len(data), blocks, (cpuTime() - cpu0).Seconds(), time.Since(t0).Seconds())
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
