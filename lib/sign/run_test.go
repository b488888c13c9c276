package sign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
)

// TestTamperAnywhere flips bytes all over signed packages (container
// headers, +PKG_HASH, the signature, the inner package, the pad byte) and
// wants every flip to fail verification.
func TestTamperAnywhere(t *testing.T) {
	g := testGPG(t)
	x := testX509(t)
	gs, err := LoadGPGSigner(g.PlainSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	xs, err := LoadX509Signer(x.LeafKey, x.Leaf, nil)
	if err != nil {
		t.Fatal(err)
	}
	gv, err := NewGPGVerifier(g.PlainPub)
	if err != nil {
		t.Fatal(err)
	}
	xv, err := NewX509Verifier(x.CA, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		s    Signer
		v    Verifier
	}{{"gpg", gs, gv}, {"x509", xs, xv}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "tamper-1.0.tgz")
			makePackage(t, p, "tamper-1.0", 70001, 3) // odd: the container ends in a pad byte
			if rep, err := SignFiles(context.Background(), []string{p}, tc.s, Options{}); err != nil || rep.Signed != 1 {
				t.Fatalf("%v %+v", err, rep)
			}
			signed, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if res, err := VerifyPackage("signed", bytes.NewReader(signed), tc.v); err != nil || !res.OK() {
				t.Fatalf("untouched package: %v %+v", err, res)
			}
			innerStart := bytes.Index(signed, []byte("tamper-1.0.tmp.tgz")) + len("tamper-1.0.tmp.tgz")
			var positions []int
			for i := 0; i < innerStart+200; i += 2 { // every container, hash and signature region
				positions = append(positions, i)
			}
			for i := innerStart + 200; i < len(signed); i += 331 {
				positions = append(positions, i)
			}
			positions = append(positions, len(signed)-2, len(signed)-1)
			for k, pos := range positions {
				b := bytes.Clone(signed)
				// 0xff makes any text byte non-text; 0x01 and 0x80 keep
				// base64 and DER plausible (unused padding bits, lengths).
				b[pos] ^= []byte{0xff, 0x01, 0x80}[k%3]
				res, err := VerifyPackage("tampered", bytes.NewReader(b), tc.v)
				if err != nil {
					t.Fatalf("byte %d: %v", pos, err)
				}
				if res.OK() {
					t.Fatalf("byte %d (of %d, inner starts at %d) flipped, still verifies: %+v", pos, len(b), innerStart, res)
				}
				if len(res.Problems)+len(res.Notes) == 0 {
					t.Fatalf("byte %d: failed without saying why", pos)
				}
			}
			t.Logf("%d flipped positions, all rejected", len(positions))
			// Truncation anywhere is caught too.
			for _, n := range []int{7, 100, innerStart, len(signed) / 2, len(signed) - 1} {
				res, err := VerifyPackage("truncated", bytes.NewReader(signed[:n]), tc.v)
				if err != nil {
					t.Fatalf("truncated at %d: %v", n, err)
				}
				if res.OK() {
					t.Fatalf("truncated at %d: verifies", n)
				}
			}
			// A flipped inner byte names the block.
			b := bytes.Clone(signed)
			b[innerStart+65536+10] ^= 1
			res, _ := VerifyPackage("t", bytes.NewReader(b), tc.v)
			if fmt.Sprint(res.BadBlocks) != "[1]" || !strings.Contains(strings.Join(res.Problems, ";"), "Invalid signature of block 1") {
				t.Fatalf("flip in block 1: %+v", res)
			}
		})
	}
}

func FuzzVerifyPackage(f *testing.F) {
	dir := f.TempDir()
	p := filepath.Join(dir, "fuzz-1.0.tgz")
	makePackage(f, p, "fuzz-1.0", 1500, 1)
	x := testX509(f)
	s, err := LoadX509Signer(x.LeafKey, x.Leaf, nil)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := SignFiles(context.Background(), []string{p}, s, Options{}); err != nil {
		f.Fatal(err)
	}
	signed, _ := os.ReadFile(p)
	f.Add(signed)
	f.Add(signed[:200])
	f.Add([]byte("!<arch>\n"))
	v := s.Verifier()
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := VerifyPackage("fuzz", bytes.NewReader(b), v)
		if err != nil {
			t.Fatalf("in-memory input gave an I/O error: %v", err)
		}
		if res.OK() && !bytes.Equal(b, signed) {
			// Only the package we signed may verify with our key.
			t.Fatalf("a different input verifies: %q", b)
		}
	})
}

func fileStates(t *testing.T, files []string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m[f] = b
	}
	return m
}

func TestRerun(t *testing.T) {
	x := testX509(t)
	s, err := LoadX509Signer(x.LeafKey, x.Leaf, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadX509Signer(x.OtherKey, x.Other, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var files []string
	for i, size := range []int{5000, 70001, 9000} {
		p := filepath.Join(dir, fmt.Sprintf("rerun%d-1.0.tgz", i))
		makePackage(t, p, fmt.Sprintf("rerun%d-1.0", i), size, uint64(i))
		files = append(files, p)
	}
	ctx := context.Background()
	count := func(rep *Report) string {
		return fmt.Sprintf("signed=%d resigned=%d skipped=%d failed=%d", rep.Signed, rep.Resigned, rep.Skipped, rep.Failed)
	}
	rep, err := SignFiles(ctx, files, s, Options{})
	if err != nil || count(rep) != "signed=3 resigned=0 skipped=0 failed=0" {
		t.Fatalf("first run: %v %s %+v", err, count(rep), rep.Outcomes)
	}
	before := fileStates(t, files)
	rep, err = SignFiles(ctx, files, s, Options{})
	if err != nil || count(rep) != "signed=0 resigned=0 skipped=3 failed=0" {
		t.Fatalf("second run: %v %s %+v", err, count(rep), rep.Outcomes)
	}
	for f, b := range fileStates(t, files) {
		if !bytes.Equal(b, before[f]) {
			t.Fatalf("%s changed on a run that skipped it", f)
		}
	}
	// A rebuild replaces one package with a new unsigned one.
	makePackage(t, files[1], "rerun1-1.0", 70003, 99)
	rep, err = SignFiles(ctx, files, s, Options{})
	if err != nil || count(rep) != "signed=1 resigned=0 skipped=2 failed=0" || rep.Outcomes[1].Action != ActionSigned {
		t.Fatalf("after a rebuild: %v %s %+v", err, count(rep), rep.Outcomes)
	}
	// Another key: every package is re-signed, inner packages unchanged.
	inner0 := innerOf(t, files[0])
	rep, err = SignFiles(ctx, files, other, Options{})
	if err != nil || count(rep) != "signed=0 resigned=3 skipped=0 failed=0" {
		t.Fatalf("other key: %v %s %+v", err, count(rep), rep.Outcomes)
	}
	if !strings.Contains(rep.Outcomes[0].Reason, "signed by X.509 CN=pkgsign leaf") {
		t.Errorf("re-sign reason: %q", rep.Outcomes[0].Reason)
	}
	if !bytes.Equal(innerOf(t, files[0]), inner0) {
		t.Fatal("re-signing changed the inner package")
	}
	v, _ := NewX509Verifier(x.CA, "")
	for _, f := range files {
		if res := verifyFile(t, f, v); !res.OK() || !strings.Contains(res.Signer, "pkgsign other") {
			t.Fatalf("%s after re-signing: %+v", f, res)
		}
	}
	// A signed package whose inner package was damaged is not re-signed.
	b, _ := os.ReadFile(files[2])
	b[len(b)-100] ^= 1
	os.WriteFile(files[2], b, 0o644)
	rep, err = SignFiles(ctx, files, other, Options{})
	if err != nil || count(rep) != "signed=0 resigned=0 skipped=2 failed=1" ||
		!strings.Contains(rep.Outcomes[2].Reason, "damaged") {
		t.Fatalf("damaged package: %v %s %+v", err, count(rep), rep.Outcomes)
	}
	if after, _ := os.ReadFile(files[2]); !bytes.Equal(after, b) {
		t.Fatal("damaged package was changed")
	}
}

func innerOf(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := ExtractInner(f, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// failingStore fails every Put after the first n.
type failingStore struct {
	store.Store
	n    int32
	puts atomic.Int32
}

func (f *failingStore) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if f.puts.Add(1) > f.n {
		// Read part of the data first, as a connection dropping mid-way would.
		_, _ = io.CopyN(io.Discard, r, 100)
		return errors.New("simulated store failure")
	}
	return f.Store.Put(ctx, name, r, size)
}

// checkAllOrNothing wants every package to be either its original bytes or
// a valid signed package whose inner package is the original.
func checkAllOrNothing(t *testing.T, dir string, orig map[string][]byte, v Verifier) (signed, unsigned int) {
	t.Helper()
	for name, o := range orig {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(b, o) {
			unsigned++
			continue
		}
		res, err := VerifyPackage(name, bytes.NewReader(b), v)
		if err != nil || !res.OK() {
			t.Fatalf("%s is neither the original nor validly signed: %v %+v", name, err, res)
		}
		var inner bytes.Buffer
		if _, err := ExtractInner(bytes.NewReader(b), &inner); err != nil || !bytes.Equal(inner.Bytes(), o) {
			t.Fatalf("%s: inner package differs from the original", name)
		}
		signed++
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "All"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), store.TempPrefix) {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
	return signed, unsigned
}

func makeStore(t *testing.T, n int) (string, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "All"), 0o755); err != nil {
		t.Fatal(err)
	}
	orig := map[string][]byte{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("All/store%d-2.0.tgz", i)
		orig[name] = makePackage(t, filepath.Join(dir, name), fmt.Sprintf("store%d-2.0", i), 4000+i*30000, uint64(i))
	}
	// Things that are not packages of All/ are left alone.
	os.WriteFile(filepath.Join(dir, "All", "pkg_summary.gz"), []byte("x"), 0o644)
	return dir, orig
}

func TestSignStore(t *testing.T) {
	x := testX509(t)
	s, err := LoadX509Signer(x.LeafKey, x.Leaf, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir, orig := makeStore(t, 4)
	st, err := storeopen.Open(ctx, "file://"+dir, storeopen.Options{NoRetry: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// A store whose Put fails after the first package.
	fs := &failingStore{Store: st, n: 1}
	rep, err := SignStore(ctx, fs, s, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Signed != 1 || rep.Failed != 3 || !strings.Contains(rep.Outcomes[1].Reason, "simulated store failure") {
		t.Fatalf("failing store: %+v", rep)
	}
	if signed, unsigned := checkAllOrNothing(t, dir, orig, s.Verifier()); signed != 1 || unsigned != 3 {
		t.Fatalf("after failing Puts: %d signed, %d unsigned", signed, unsigned)
	}

	// Cancelled after the second package (an interrupted run).
	cctx, cancel := context.WithCancel(ctx)
	var lines atomic.Int32
	prog := writerFunc(func(p []byte) (int, error) {
		if lines.Add(1) == 2 {
			cancel()
		}
		return len(p), nil
	})
	rep, err = SignStore(cctx, st, s, Options{TempDir: t.TempDir(), Progress: prog})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run returned %v", err)
	}
	// (The package signed through failingStore, which cannot keep
	// times, is now the newest and comes last: the two lines are two
	// packages signed.)
	signed, unsigned := checkAllOrNothing(t, dir, orig, s.Verifier())
	if signed != 1+rep.Signed || signed+unsigned != 4 || rep.Packages != 2 || signed == 4 {
		t.Fatalf("after an interrupted run: %d signed, %d unsigned (%+v)", signed, unsigned, rep.Outcomes)
	}

	// The re-run (3 at once) finishes the job and skips what is done.
	rep, err = SignStore(ctx, st, s, Options{TempDir: t.TempDir(), Jobs: 3})
	if err != nil || rep.Skipped != signed || rep.Signed != unsigned || rep.Packages != 4 {
		t.Fatalf("re-run: %v %+v", err, rep)
	}
	if signed, _ := checkAllOrNothing(t, dir, orig, s.Verifier()); signed != 4 {
		t.Fatalf("after the re-run: %d signed", signed)
	}
	res, err := VerifyStore(ctx, st, ".tgz", s.Verifier())
	if err != nil || len(res) != 4 {
		t.Fatalf("VerifyStore: %v %d results", err, len(res))
	}
	for _, r := range res {
		if !r.OK() {
			t.Fatalf("%s: %+v", r.File, r)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
