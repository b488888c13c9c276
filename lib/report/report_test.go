package report

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/sched"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestTextGolden(t *testing.T) {
	_, b := loadFixture(t)
	var buf bytes.Buffer
	if err := WriteText(&buf, b, time.UTC); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "report.txt.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != string(want) {
		t.Errorf("report.txt differs from %s\n--- got\n%s--- want\n%s", golden, got, want)
	}
}

// parseReport splits meta/report into records keyed by PKGNAME, keeping
// the PKGNAME order of the file.
func parseReport(t *testing.T, data string) (order []string, recs map[string]map[string]string, texts map[string]string) {
	t.Helper()
	recs = map[string]map[string]string{}
	texts = map[string]string{}
	var cur string
	for _, line := range strings.SplitAfter(data, "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		if !ok {
			t.Fatalf("report line %q is not KEY=VALUE", line)
		}
		if k == "PKGNAME" {
			cur = v
			order = append(order, v)
			recs[cur] = map[string]string{}
		}
		if _, dup := recs[cur][k]; dup {
			t.Errorf("%s: key %s twice", cur, k)
		}
		recs[cur][k] = v
		texts[cur] += line
	}
	return order, recs, texts
}

func TestMetaReport(t *testing.T) {
	d, b := loadFixture(t)
	var buf bytes.Buffer
	if err := WriteReport(context.Background(), &buf, d, b); err != nil {
		t.Fatal(err)
	}
	order, recs, texts := parseReport(t, buf.String())
	want := []struct {
		name   string
		depth  string
		status string
		own    string // PKGBULK_STATUS
	}{
		{"app-a-2.0", "2", "indirect-failed", ""},
		{"app-b-1.0", "1", "indirect-failed", ""},
		{"broken-1.0", "2", "prefailed", ""},
		{"built-1.0", "1", "done", ""},
		{"libbar-0.5", "2", "failed", ""},
		{"libfoo-1.0", "3", "failed", ""},
		{"needs-broken-1.0", "1", "indirect-prefailed", ""},
		{"ok-1.0", "2", "done", ""},
		{"py311-x-1.0", "1", "indirect-failed", ""},
		{"py312-x-1.0", "1", "done", ""},
		{"python311-3.11.9", "2", "failed", ""},
		{"python312-3.12.4", "2", "done", ""},
		{"skewed-1.0", "1", "failed", "skew"},
		{"skipped-1.0", "1", "prefailed", ""},
		{"slow-2.0", "1", "failed", "timeout"},
	}
	var names []string
	for _, w := range want {
		names = append(names, w.name)
	}
	if !reflect.DeepEqual(order, names) {
		t.Fatalf("report order (PKGNAME sort, unselected other-1.0 left out):\n got %v\nwant %v", order, names)
	}
	for _, w := range want {
		r := recs[w.name]
		if r["PKG_DEPTH"] != w.depth || r["BUILD_STATUS"] != w.status || r["PKGBULK_STATUS"] != w.own {
			t.Errorf("%s: PKG_DEPTH=%q BUILD_STATUS=%q PKGBULK_STATUS=%q, want %q %q %q", w.name,
				r["PKG_DEPTH"], r["BUILD_STATUS"], r["PKGBULK_STATUS"], w.depth, w.status, w.own)
		}
		// The presolve record comes first, whole and unchanged.
		var rec string
		if err := d.QueryRow(`SELECT record FROM presolve WHERE pkgname = ?`, w.name).Scan(&rec); err != nil {
			t.Fatal(err)
		}
		tail := "PKG_DEPTH=" + w.depth + "\nBUILD_STATUS=" + w.status + "\n"
		if w.own != "" {
			tail += "PKGBULK_STATUS=" + w.own + "\n"
		}
		if texts[w.name] != rec+tail {
			t.Errorf("%s: record text\n%q\nwant\n%q", w.name, texts[w.name], rec+tail)
		}
	}
}

func TestPbuildSuccessError(t *testing.T) {
	_, b := loadFixture(t)
	tests := []struct {
		name  string
		write func(*bytes.Buffer) error
		want  string
	}{
		{"pbuild", func(w *bytes.Buffer) error { return WritePbuild(w, b) }, "" +
			"ok-1.0|done||2\n" +
			"built-1.0|done||1\n" +
			"libfoo-1.0|failed||3\n" +
			"libbar-0.5|failed||2\n" +
			"app-a-2.0|indirect-failed||2\n" +
			"app-b-1.0|indirect-failed||1\n" +
			"python311-3.11.9|failed||2\n" +
			"python312-3.12.4|done||2\n" +
			"py311-x-1.0|indirect-failed||1\n" +
			"py312-x-1.0|done||1\n" +
			"skewed-1.0|failed||1\n" +
			"slow-2.0|failed||1\n" +
			"broken-1.0|prefailed||2\n" +
			"needs-broken-1.0|indirect-prefailed||1\n" +
			"skipped-1.0|prefailed||1\n"},
		// Finish order: ok 1h, python312 2h, built 3h, py312-x 5h.
		{"success", func(w *bytes.Buffer) error { return WriteSuccess(w, b) },
			"ok-1.0\npython312-3.12.4\nbuilt-1.0\npy312-x-1.0\n"},
		// libbar 1h, libfoo 2h, python311 4h, skewed 5h, slow 6h.
		{"error", func(w *bytes.Buffer) error { return WriteError(w, b) },
			"libbar-0.5\nlibfoo-1.0\npython311-3.11.9\nskewed-1.0\nslow-2.0\n"},
		{"status", func(w *bytes.Buffer) error { return WriteStatus(w, b, time.UTC) }, "" +
			"BUILD_START_ISO=2026-11-20 10:05\n" +
			"BUILD_START_DIR=20261120.1005\n" +
			"BUILD_START_EPOCHE=1795169130\n" + // date -u -d '2026-11-20 10:05:30' +%s
			"BASE_URL=https://bulk.example.org/reports\n" +
			"COMPILER=gcc\n" +
			"PLATFORM=NetBSD 10.0/x86_64\n" +
			"BUILD_END_ISO=2026-11-20 18:42\n" +
			"BUILD_END_EPOCHE=1795200130\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tt.write(&buf); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", buf.String(), tt.want)
			}
		})
	}
}

func TestStatusLocalTime(t *testing.T) {
	_, b := loadFixture(t)
	// pbulk's date(1) prints the host's local time; the epoch is the same.
	tokyo := time.FixedZone("JST", 9*3600)
	var buf bytes.Buffer
	if err := WriteStatus(&buf, b, tokyo); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"BUILD_START_ISO=2026-11-20 19:05\n", "BUILD_START_DIR=20261120.1905\n",
		"BUILD_START_EPOCHE=1795169130\n", "BUILD_END_ISO=2026-11-21 03:42\n"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("status in JST lacks %q:\n%s", want, buf.String())
		}
	}
}

// A database pkgsched has not run on yet: states are pkgdag's initial
// ones, nothing has ended, and the start is the database's creation.
func TestNoBuildYet(t *testing.T) {
	d := openDB(t, makeDB(t, fixture(), true))
	b, err := Load(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	c := b.Counts()
	want := Counts{Total: 3, Prefailed: 2, IndirectPrefailed: 1, Open: 12}
	if c != want {
		t.Errorf("counts %+v, want %+v", c, want)
	}
	var buf bytes.Buffer
	if err := WriteStatus(&buf, b, time.UTC); err != nil {
		t.Fatal(err)
	}
	if want := "BUILD_START_ISO=2026-11-20 09:05\n"; !strings.HasPrefix(buf.String(), want) || strings.Contains(buf.String(), "BUILD_END") {
		t.Errorf("status of an unstarted build:\n%s\nwant start %q and no end", buf.String(), want)
	}
	buf.Reset()
	if err := WritePbuild(&buf, b); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "ok-1.0|open||2\n") || !strings.Contains(buf.String(), "\nneeds-broken-1.0|indirect-prefailed||1\n") {
		t.Errorf("pbuild of an unstarted build:\n%s", buf.String())
	}
	buf.Reset()
	if err := WriteHTML(&buf, b, time.UTC); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Build end: (not finished)", "<td>Not built yet (open, in processing):</td><td class=\"n\">12, 0</td>",
		`<tr class="open" id="pkg-libfoo-1.0">`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("report.html of an unstarted build lacks %q", want)
		}
	}
	buf.Reset()
	if err := WriteText(&buf, b, time.UTC); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "Build end:   \n") || !strings.Contains(buf.String(), "Total number of packages:          3\n") {
		t.Errorf("report.txt of an unstarted build:\n%s", buf.String())
	}
}

// Top 10 of more than ten failing locations, in sort -rn order.
func TestTopTen(t *testing.T) {
	var pkgs []tpkg
	// lib00..lib11 break i%4+1 packages each (so counts tie).
	for i := range 12 {
		lib := tpkg{name: "lib" + two(i) + "-1", loc: "devel/lib" + two(i), maint: "m" + two(i), state: sched.Failed}
		pkgs = append(pkgs, lib)
		for k := range i%4 + 1 {
			pkgs = append(pkgs, tpkg{name: "use" + two(i) + "x" + two(k) + "-1", loc: "misc/use" + two(i) + "x" + two(k),
				deps: []string{lib.name}, state: sched.IndirectFailed})
		}
	}
	d := openDB(t, makeDB(t, pkgs, false))
	b, err := Load(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteText(&buf, b, time.UTC); err != nil {
		t.Fatal(err)
	}
	_, top, ok := strings.Cut(buf.String(), "Most offending build failures\n\n")
	if !ok {
		t.Fatalf("no top list:\n%s", buf.String())
	}
	top, _, _ = strings.Cut(top, "\n\nBuild failures")
	lines := strings.Split(top, "\n")[2:]
	// Counts: i%4+1 → 4: lib03 lib07 lib11; 3: lib02 lib06 lib10; 2: lib01 lib05 lib09; 1: ...
	var got []string
	for _, l := range lines {
		f := strings.Fields(l)
		got = append(got, f[0]+" "+f[1])
	}
	want := []string{"devel/lib11 4", "devel/lib07 4", "devel/lib03 4", "devel/lib10 3", "devel/lib06 3", "devel/lib02 3",
		"devel/lib09 2", "devel/lib05 2", "devel/lib01 2", "devel/lib08 1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("top list\n got %q\nwant %q", got, want)
	}
}

func two(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }

func TestRootFailures(t *testing.T) {
	_, b := loadFixture(t)
	tests := []struct{ pkg, want string }{
		{"app-a-2.0", "libfoo-1.0"},
		{"app-b-1.0", "libbar-0.5 libfoo-1.0"}, // through indirect-failed app-a
		{"py311-x-1.0", "python311-3.11.9"},
	}
	for _, tt := range tests {
		var p *Package
		for _, q := range b.Packages {
			if q.Name == tt.pkg {
				p = q
			}
		}
		var names []string
		for _, r := range b.RootFailures(p) {
			names = append(names, r.Name)
		}
		if got := strings.Join(names, " "); got != tt.want {
			t.Errorf("RootFailures(%s) = %q, want %q", tt.pkg, got, tt.want)
		}
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`"does not build with gcc 14" "see PR 12345"`, []string{"does not build with gcc 14", "see PR 12345"}},
		{`"could not resolve dependency "foo>=1.0""`, []string{"could not resolve dependency foo>=1.0"}},
		{`two  words`, []string{"two", "words"}},
		{`"a\"quoted\" \<b\>"`, []string{`a"quoted" <b>`}},
		{`"line\nbreak\ttab"`, []string{"line break tab"}},
		{``, nil},
		{`""`, nil},
		{`trailing\`, []string{`trailing\`}},
	}
	for _, tt := range tests {
		if got := Reason(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Reason(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzReason(f *testing.F) {
	for _, s := range []string{`"a b" c`, `\"x`, `"unterminated`, "  ", `\`, "é \"ü\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, l := range Reason(s) {
			if l == "" {
				t.Errorf("Reason(%q) has an empty line", s)
			}
		}
	})
}

func TestWall(t *testing.T) {
	tests := []struct {
		ms   int64
		want string
	}{{0, "0.0s"}, {7300, "7.3s"}, {65000, "1m05s"}, {3723000, "1h02m03s"}, {90061000, "25h01m01s"}}
	for _, tt := range tests {
		if got := wall(tt.ms); got != tt.want {
			t.Errorf("wall(%d) = %q, want %q", tt.ms, got, tt.want)
		}
	}
}

func TestDot(t *testing.T) {
	_, b := loadFixture(t)
	var buf bytes.Buffer
	if err := WriteDot(&buf, b); err != nil {
		t.Fatal(err)
	}
	// Edges from failures to their dependents (dependents in PKGNAME
	// order), then every failure that has an edge or breaks something:
	// skewed, slow and skipped break nothing and have no edge.
	want := `digraph "Broken packages" {
"libfoo-1.0" -> "app-a-2.0" [ color = "red" ];
"libbar-0.5" -> "app-b-1.0" [ color = "red" ];
"app-a-2.0" -> "app-b-1.0" [ color = "lightgray" ];
"broken-1.0" -> "needs-broken-1.0" [ color = "lightgray" ];
"python311-3.11.9" -> "py311-x-1.0" [ color = "red" ];
"app-a-2.0" [ color = "orange", fontcolor = "orange", label="app-a-2.0" ];
"app-b-1.0" [ color = "orange", fontcolor = "orange", label="app-b-1.0" ];
"broken-1.0" [ color = "gray2", fontcolor = "gray2", label="broken-1.0" ];
"libbar-0.5" [ color = "red", fontcolor = "red", label="libbar-0.5" ];
"libfoo-1.0" [ color = "red", fontcolor = "red", label="libfoo-1.0" ];
"needs-broken-1.0" [ color = "lightgray", fontcolor = "lightgray", label="needs-broken-1.0" ];
"py311-x-1.0" [ color = "orange", fontcolor = "orange", label="py311-x-1.0" ];
"python311-3.11.9" [ color = "red", fontcolor = "red", label="python311-3.11.9" ];
}
`
	if buf.String() != want {
		t.Errorf("report.dot:\n%s\nwant\n%s", buf.String(), want)
	}
}
