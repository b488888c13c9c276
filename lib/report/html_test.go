package report

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/net/html"

	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
)

// putLogs writes log files into a file store directory.
func putLogs(t *testing.T, storeDir string, files ...string) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(storeDir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("log of "+f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// htmlRows returns the data rows (not the note rows) of the table with
// class cls as cell texts, plus the note texts by PKGNAME and every href
// of each row by PKGNAME.
type parsedRow struct {
	class string
	id    string
	cells []string
	hrefs []string
	note  string
}

func findAll(n *html.Node, pred func(*html.Node) bool, out *[]*html.Node) {
	if pred(n) {
		*out = append(*out, n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		findAll(c, pred, out)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.TrimSpace(b.String())
}

func tableRows(t *testing.T, doc *html.Node, cls string) []parsedRow {
	t.Helper()
	var tables []*html.Node
	findAll(doc, func(n *html.Node) bool {
		return n.Type == html.ElementNode && n.Data == "table" && strings.Contains(" "+attr(n, "class")+" ", " "+cls+" ")
	}, &tables)
	if len(tables) != 1 {
		t.Fatalf("%d tables of class %s", len(tables), cls)
	}
	var trs []*html.Node
	findAll(tables[0], func(n *html.Node) bool {
		return n.Type == html.ElementNode && n.Data == "tr" && n.Parent.Data == "tbody"
	}, &trs)
	var rows []parsedRow
	for _, tr := range trs {
		var tds, as []*html.Node
		findAll(tr, func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == "td" }, &tds)
		findAll(tr, func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == "a" }, &as)
		if strings.HasPrefix(attr(tr, "class"), "note ") {
			if len(rows) == 0 {
				t.Fatal("note row before any data row")
			}
			last := &rows[len(rows)-1]
			last.note = text(tr)
			for _, a := range as {
				last.hrefs = append(last.hrefs, attr(a, "href"))
			}
			continue
		}
		r := parsedRow{class: attr(tr, "class"), id: attr(tr, "id")}
		for _, td := range tds {
			r.cells = append(r.cells, text(td))
		}
		for _, a := range as {
			r.hrefs = append(r.hrefs, attr(a, "href"))
		}
		rows = append(rows, r)
	}
	return rows
}

func TestHTMLWithFileStore(t *testing.T) {
	ctx := context.Background()
	_, b := loadFixture(t)
	root := t.TempDir()
	storeDir := filepath.Join(root, "packages")
	reportDir := filepath.Join(root, "bulklog", "meta")
	putLogs(t, storeDir,
		"bulklog/libfoo-1.0/pre-clean.log", "bulklog/libfoo-1.0/depends.log", "bulklog/libfoo-1.0/checksum.log",
		"bulklog/libfoo-1.0/configure.log", "bulklog/libfoo-1.0/build.log", "bulklog/libfoo-1.0/work.log",
		"bulklog/libbar-0.5/configure.log",
		// Logs of a package that is done now (an old failure) and of one
		// not in this build are not shown.
		"bulklog/built-1.0/build.log", "bulklog/gone-1.0/build.log",
		"All/libfoo-0.9.tgz")
	st, err := storeopen.Open(ctx, "file://"+storeDir, storeopen.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := FindLogs(ctx, b, st, Links{StoreDir: storeDir, ReportDir: reportDir}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteHTML(&buf, b, time.UTC); err != nil {
		t.Fatal(err)
	}
	raw := buf.String()
	if !strings.HasPrefix(raw, "<!DOCTYPE html>\n") {
		t.Error("no HTML5 doctype")
	}
	if strings.Contains(raw, "<evil>") || !strings.Contains(raw, "&lt;evil&gt;&amp;co") {
		t.Error("maintainer <evil>&co is not escaped")
	}
	for _, bad := range []string{"<script", "http://", "https://", "@import"} {
		if strings.Contains(raw, bad) {
			t.Errorf("report.html contains %q: no scripts or external resources wanted", bad)
		}
	}
	doc, err := html.Parse(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var titles []*html.Node
	findAll(doc, func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == "title" }, &titles)
	if len(titles) != 1 || text(titles[0]) != "pkgsrc bulk build for NetBSD 10.0/x86_64 from 2026-11-20 10:05" {
		t.Errorf("title %v", titles)
	}

	checkTableWidths(t, doc)
	rows := tableRows(t, doc, "all")
	// Location, PKGNAME, breaks, maintainer, status: every package that is
	// not done, by location then PKGNAME.
	want := [][]string{
		{"devel/libbar", "libbar-0.5", "1", "<evil>&co", "failed"},
		{"devel/libfoo", "libfoo-1.0", "2", "alice@example.org", "failed"},
		{"devel/py-x", "py311-x-1.0", "", "pkgsrc-users@NetBSD.org", "indirect-failed"},
		{"lang/python", "python311-3.11.9", "1", "pkgsrc-users@NetBSD.org", "failed"},
		{"misc/skewed", "skewed-1.0", "", "carol@example.org", "failed (skew)"},
		{"misc/slow", "slow-2.0", "", "dave@example.org", "failed (timeout)"},
		{"sysutils/broken", "broken-1.0", "1", "erin@example.org", "prefailed"},
		{"sysutils/needs-broken", "needs-broken-1.0", "", "erin@example.org", "indirect-prefailed"},
		{"sysutils/skipped", "skipped-1.0", "", "frank@example.org", "prefailed"},
		{"www/app-a", "app-a-2.0", "1", "bob@example.org", "indirect-failed"},
		{"www/app-b", "app-b-1.0", "", "bob@example.org", "indirect-failed"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows in All unsuccessful builds, want %d", len(rows), len(want))
	}
	byName := map[string]parsedRow{}
	for i, r := range rows {
		if got := r.cells[:5]; !reflect.DeepEqual(got, want[i]) {
			t.Errorf("row %d: %q, want %q", i, got, want[i])
		}
		if len(r.cells) != 7 {
			t.Errorf("row %d has %d cells", i, len(r.cells))
		}
		if r.id != "pkg-"+want[i][1] {
			t.Errorf("row %d id %q", i, r.id)
		}
		byName[r.cells[1]] = r
	}

	rel := "../../packages/bulklog/"
	tests := []struct {
		pkg   string
		hrefs []string // location link first, then phase logs, then other files
		note  string
		wall  string
	}{
		{"libfoo-1.0", []string{rel + "libfoo-1.0/build.log", rel + "libfoo-1.0/pre-clean.log", rel + "libfoo-1.0/depends.log",
			rel + "libfoo-1.0/checksum.log", rel + "libfoo-1.0/configure.log", rel + "libfoo-1.0/build.log", rel + "libfoo-1.0/work.log"},
			"failed in build: make all exited 2", "1h02m03s"},
		{"libbar-0.5", []string{rel + "libbar-0.5/configure.log", rel + "libbar-0.5/configure.log"}, "failed in configure", "5.4s"},
		// The store is what counts: the result names logs the store no
		// longer has.
		{"python311-3.11.9", nil, "failed in install", "10m00s"},
		{"app-b-1.0", []string{"#pkg-libbar-0.5", "#pkg-libfoo-1.0"}, "Failed: libbar-0.5 libfoo-1.0", ""},
		{"py311-x-1.0", []string{"#pkg-python311-3.11.9"}, "Failed: python311-3.11.9", ""},
		{"skewed-1.0", nil, "version skew: tree has skewed-1.1", "0.3s"},
		{"slow-2.0", nil, "timed out in build", "2h00m00s"},
		{"broken-1.0", nil, "PKG_FAIL_REASON:\ndoes not build with gcc 14\nsee PR 12345", ""},
		{"skipped-1.0", nil, "PKG_SKIP_REASON:\n${PKGNAME} is not available for Linux", ""},
		{"needs-broken-1.0", []string{"#pkg-broken-1.0"}, "Depends on broken-1.0", ""},
	}
	for _, tt := range tests {
		r := byName[tt.pkg]
		if tt.note != r.note || tt.wall != r.cells[5] {
			t.Errorf("%s: note %q wall %q, want %q %q", tt.pkg, r.note, r.cells[5], tt.note, tt.wall)
		}
		if !reflect.DeepEqual(r.hrefs, tt.hrefs) {
			t.Errorf("%s: links\n got %q\nwant %q", tt.pkg, r.hrefs, tt.hrefs)
		}
		for _, h := range r.hrefs {
			if strings.HasPrefix(h, "#") {
				continue
			}
			if _, err := os.Stat(filepath.Join(reportDir, filepath.FromSlash(h))); err != nil {
				t.Errorf("%s: link %s does not lead to the log: %v", tt.pkg, h, err)
			}
		}
	}
	// The breakage table: failed packages by breaks, ties in sort -rn order.
	var top []string
	for _, r := range tableRows(t, doc, "top") {
		top = append(top, r.cells[1]+" "+r.cells[2])
		if r.id != "" {
			t.Errorf("top row %s carries id %s twice in the page", r.cells[1], r.id)
		}
	}
	if want := []string{"libfoo-1.0 2", "python311-3.11.9 1", "libbar-0.5 1"}; !reflect.DeepEqual(top, want) {
		t.Errorf("top breakage %q, want %q", top, want)
	}
}

func TestHTMLLinksWithoutStore(t *testing.T) {
	tests := []struct {
		name  string
		links Links
		want  string // href of libfoo's build log
	}{
		{"pbulk layout", Links{}, "../libfoo-1.0/build.log"},
		{"url base", Links{URLBase: "https://logs.example.org/2026/"}, "https://logs.example.org/2026/libfoo-1.0/build.log"},
		{"local store", Links{StoreDir: "/srv/pkg store", ReportDir: "/srv/reports/meta"}, "../../pkg%20store/bulklog/libfoo-1.0/build.log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, b := loadFixture(t)
			if err := FindLogs(context.Background(), b, nil, tt.links); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := WriteHTML(&buf, b, time.UTC); err != nil {
				t.Fatal(err)
			}
			doc, err := html.Parse(&buf)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tableRows(t, doc, "all") {
				if r.cells[1] != "libfoo-1.0" {
					continue
				}
				// Location link (build.log, the last log) and five phase logs
				// from pkgrun's result.
				if len(r.hrefs) != 6 || r.hrefs[0] != tt.want || r.hrefs[5] != tt.want {
					t.Errorf("libfoo links %q, want %s first and last", r.hrefs, tt.want)
				}
				return
			}
			t.Fatal("no libfoo row")
		})
	}
}

func TestHTMLEmpty(t *testing.T) {
	d := openDB(t, makeDB(t, []tpkg{{name: "a-1", loc: "x/a", state: "done"}}, false))
	b, err := Load(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteHTML(&buf, b, time.UTC); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "<p>Every package was built.</p>") || strings.Contains(buf.String(), "most breakage") {
		t.Errorf("report of a clean build:\n%s", buf.String())
	}
}

// Whatever a maintainer or PKG_LOCATION holds, the page shows it as text.
func FuzzHTMLEscaping(f *testing.F) {
	for _, s := range []string{"<evil>&co", `"><script>alert(1)</script>`, "a&amp;b", "x'y\"z", "é <b>", "]]><!--"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, maint, loc string) {
		b := &Build{Platform: maint, Packages: []*Package{
			{Name: "a-1", Location: loc, Maintainer: maint, Depth: 2, State: "failed", WallMS: -1,
				Logs: []Log{{Phase: "build", URL: "../a-1/build.log"}}},
			{Name: "b-1", Location: "x/b", Maintainer: maint, Depth: 1, State: "indirect-failed", WallMS: -1, Deps: []int{0}},
		}}
		var buf bytes.Buffer
		if err := WriteHTML(&buf, b, time.UTC); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(buf.String(), "<script") {
			t.Fatalf("markup from the data reached the page:\n%s", buf.String())
		}
		plain := func(s string) bool {
			if s != strings.TrimSpace(s) || !utf8.ValidString(s) {
				return false
			}
			for _, r := range s {
				if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
					return false
				}
			}
			return true
		}
		doc, err := html.Parse(&buf)
		if err != nil {
			t.Fatal(err)
		}
		rows := tableRows(t, doc, "all")
		if len(rows) != 2 {
			t.Fatalf("%d rows", len(rows))
		}
		a := rows[0]
		if a.cells[1] != "a-1" {
			a = rows[1]
		}
		if plain(maint) && a.cells[3] != maint {
			t.Errorf("maintainer %q shown as %q", maint, a.cells[3])
		}
		if plain(loc) && a.cells[0] != loc {
			t.Errorf("location %q shown as %q", loc, a.cells[0])
		}
	})
}

// checkTableWidths checks that every row of every table is as wide as
// its first row (counting colspan), which HTML validators require.
func checkTableWidths(t *testing.T, doc *html.Node) {
	t.Helper()
	var tables []*html.Node
	findAll(doc, func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == "table" }, &tables)
	if len(tables) == 0 {
		t.Fatal("no tables")
	}
	for ti, tb := range tables {
		var trs []*html.Node
		findAll(tb, func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == "tr" }, &trs)
		width := -1
		for ri, tr := range trs {
			w := 0
			for c := tr.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.ElementNode && (c.Data == "td" || c.Data == "th") {
					span := 1
					if v := attr(c, "colspan"); v != "" {
						fmt.Sscan(v, &span)
					}
					w += span
				}
			}
			if width < 0 {
				width = w
			} else if w != width {
				t.Errorf("table %d row %d is %d columns wide, the first row %d", ti, ri, w, width)
			}
		}
	}
}
