package distfile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/store/memstore"
)

func TestList(t *testing.T) {
	ctx := context.Background()
	tree := t.TempDir()
	write := func(loc, body string) {
		os.MkdirAll(filepath.Join(tree, loc), 0o755)
		os.WriteFile(filepath.Join(tree, loc, "distinfo"), []byte(body), 0o644)
	}
	write("a/one", "SHA256 (shared.tgz) = 01\nSize (shared.tgz) = 4 bytes\nSHA256 (one.tgz) = 02\nSize (one.tgz) = 3 bytes\nSHA1 (patch-aa) = 03\n")
	write("a/two", "SHA256 (shared.tgz) = 01\nSize (shared.tgz) = 4 bytes\nSHA256 (sub/two.tgz) = 04\nSize (sub/two.tgz) = 2 bytes\n")
	write("a/three", "SHA256 (one.tgz) = ff\nSize (one.tgz) = 3 bytes\n")
	os.MkdirAll(filepath.Join(tree, "a/none"), 0o755)
	st := memstore.New("t")
	st.Put(ctx, "distfiles/shared.tgz", strings.NewReader("1234"), 4)
	st.Put(ctx, "distfiles/sub/two.tgz", strings.NewReader("123"), 3)
	pkgs := []Package{{"one-1", "a/one"}, {"two-1", "a/two"}, {"three-1", "a/three"}, {"none-1", "a/none"}}
	got, err := List(ctx, tree, pkgs, st)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, n := range got {
		lines = append(lines, n.Status+" "+n.Name+" "+strings.Join(n.Packages, ","))
	}
	want := "conflict one.tgz one-1,three-1|present shared.tgz one-1,two-1|wrong-size sub/two.tgz two-1"
	if strings.Join(lines, "|") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(lines, "|"), want)
	}
	if _, err := List(ctx, tree, []Package{{"x-1", "../etc"}}, nil); err == nil {
		t.Error("a location out of the tree was read")
	}
	if _, err := List(ctx, tree, []Package{{"x-1", "a/one"}}, nil); err != nil {
		t.Error(err)
	}
}
