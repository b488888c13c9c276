// Command genrepo writes a package store for the pkgindex benchmark
// (bench/index/run.sh), from the real fluxer 2022 metadata when available:
//
//	genrepo -mode packages -n 200 -o DIR   real .tgz packages, 100 KB to 5 MB
//	                                       (log-uniform), metadata first
//	genrepo -mode fragments -n 30000 -o DIR  index/<PKGNAME>.pkginfo fragments
//	                                       and small All/<PKGNAME>.tgz files of
//	                                       the sizes the fragments state
//
// The package names are the fluxer ones with a numeric suffix, so every
// entry is distinct while keeping real field contents and lengths.
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/pkgfile"
	"github.com/pkgbulk/pkgbulk/lib/pkgfile/pkgtest"
	"github.com/pkgbulk/pkgbulk/lib/summary"
)

func main() {
	mode := flag.String("mode", "packages", "packages or fragments")
	n := flag.Int("n", 200, "number of packages or fragments")
	out := flag.String("o", "", "output store directory")
	meta := flag.String("meta", "../shared/data/pkg_summary/fluxer-2022-metadata.tar.gz", "metadata tarball")
	minSize := flag.Int("min", 100<<10, "smallest package file (bytes, packages mode)")
	maxSize := flag.Int("max", 5<<20, "largest package file (bytes, packages mode)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "genrepo: -o DIR is required")
		os.Exit(2)
	}
	if err := run(*mode, *n, *out, *meta, *minSize, *maxSize); err != nil {
		fmt.Fprintf(os.Stderr, "genrepo: %v\n", err)
		os.Exit(2)
	}
}

func run(mode string, n int, out, metaPath string, minSize, maxSize int) error {
	f, err := os.Open(metaPath)
	if err != nil {
		return fmt.Errorf("%w (run from the repository root, or pass -meta)", err)
	}
	md, err := pkgtest.LoadMetadataTarball(f)
	f.Close()
	if err != nil {
		return err
	}
	var names []string
	for k := range md {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, d := range []string{"All", "index"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
			return err
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; i++ {
		base := names[i%len(names)]
		files := renamed(md[base], base, i)
		pkgname := fmt.Sprintf("%s.%d", base, i)
		pkgPath := filepath.Join(out, "All", pkgname+".tgz")
		switch mode {
		case "packages":
			target := math.Exp(math.Log(float64(minSize)) + rng.Float64()*(math.Log(float64(maxSize))-math.Log(float64(minSize))))
			// The payload compresses to about 40%.
			data, err := pkgtest.Package(files, pkgfile.Gzip, int(target*2.5), uint64(i))
			if err != nil {
				return err
			}
			if err := os.WriteFile(pkgPath, data, 0o644); err != nil {
				return err
			}
		case "fragments":
			size := 10000 + rng.IntN(2000000)
			if err := os.WriteFile(pkgPath, []byte(strconv.Itoa(size)), 0o644); err != nil {
				return err
			}
			if err := os.Truncate(pkgPath, int64(size)); err != nil {
				return err
			}
			e := summary.Entry(&pkgfile.Meta{Files: files}, pkgname+".tgz", int64(size))
			if err := os.WriteFile(filepath.Join(out, "index", pkgname+".pkginfo"), e, 0o644); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown mode %q", mode)
		}
	}
	return nil
}

// renamed gives the package a distinct name: @name base -> base.i.
func renamed(files map[string][]byte, base string, i int) map[string][]byte {
	c := make(map[string][]byte, len(files))
	for k, v := range files {
		c[k] = v
	}
	c["+CONTENTS"] = []byte(strings.Replace(string(files["+CONTENTS"]), "@name "+base+"\n",
		fmt.Sprintf("@name %s.%d\n", base, i), 1))
	return c
}
