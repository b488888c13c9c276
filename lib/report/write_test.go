package report

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

func TestWriteDir(t *testing.T) {
	d, b := loadFixture(t)
	dir := filepath.Join(t.TempDir(), "meta")
	if err := FindLogs(context.Background(), b, nil, Links{}); err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(context.Background(), dir, d, b, time.UTC); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(Files) {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want exactly %q", names, Files)
	}
	read := func(name string) []byte {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	var want bytes.Buffer
	if err := WriteReport(context.Background(), &want, d, b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read("report"), want.Bytes()) {
		t.Error("report differs from WriteReport's output")
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "report.txt.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read("report.txt"), golden) {
		t.Error("report.txt differs from the golden file")
	}
	// report.bz2 must be what bzip2(1) reads back as report.
	if _, err := exec.LookPath("bzip2"); err != nil {
		testenv.Skip(t, "bzip2", "bzip2 is not installed")
	}
	out, err := exec.Command("bzip2", "-dc", filepath.Join(dir, "report.bz2")).Output()
	if err != nil {
		t.Fatalf("bzip2 -dc report.bz2: %v", err)
	}
	if !bytes.Equal(out, want.Bytes()) {
		t.Error("report.bz2 does not decompress to report")
	}

	// A failed second run (cancelled here) leaves the first run's files as
	// they were and no temporary files behind.
	before := read("report.html")
	b.Platform = "changed"
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WriteDir(ctx, dir, d, b, time.UTC); err == nil {
		t.Fatal("WriteDir with a cancelled context succeeded")
	}
	if !bytes.Equal(read("report.html"), before) {
		t.Error("a failed WriteDir changed report.html")
	}
	if ents2, _ := os.ReadDir(dir); len(ents2) != len(ents) {
		t.Errorf("a failed WriteDir left %d files, want %d", len(ents2), len(ents))
	}
}

// A real browser renders report.html: chromium takes a screenshot, which
// must be an image with enough different colours to be a page with text
// and coloured rows rather than a blank or an error page.
func TestHTMLInChromium(t *testing.T) {
	var browser string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		testenv.Skip(t, "chromium", "chromium is not installed (apt-get install chromium)")
	}
	d, b := loadFixture(t)
	if err := FindLogs(context.Background(), b, nil, Links{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteDir(context.Background(), filepath.Join(dir, "meta"), d, b, time.UTC); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--screenshot="+shot, "--window-size=1200,900",
		"file://"+filepath.Join(dir, "meta", "report.html"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", browser, err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	bounds := img.Bounds()
	if bounds.Dx() != 1200 || bounds.Dy() != 900 {
		t.Errorf("screenshot is %v, want 1200x900", bounds)
	}
	colours := map[[3]uint32]int{}
	dark := 0
	for y := bounds.Min.Y; y < bounds.Max.Y; y += 2 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}]++
			if r>>8 < 100 && g>>8 < 100 && bl>>8 < 100 {
				dark++
			}
		}
	}
	// Text (dark pixels) and the row colours of failed (reddish) rows.
	if len(colours) < 50 || dark < 1000 {
		t.Errorf("screenshot looks empty: %d colours, %d dark pixels", len(colours), dark)
	}
	reddish := colours[[3]uint32{0xff, 0xf3, 0xf3}]
	t.Logf("screenshot: %d colours, %d dark and %d failed-row pixels (every 4th pixel)", len(colours), dark, reddish)
	if reddish < 100 {
		t.Errorf("no failed-row background (#fff3f3) in the screenshot: %d pixels", reddish)
	}
}
