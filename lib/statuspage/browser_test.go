package statuspage_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/sched"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
	"github.com/pkgbulk/pkgbulk/lib/statuspage"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

// browser is a headless Chromium driven over the DevTools protocol.
type browser struct {
	t    *testing.T
	ws   *websocket.Conn
	id   int
	base string // http://127.0.0.1:port of DevTools
}

// startChromium starts Debian's chromium on url with a fresh profile and
// connects to its page.
func startChromium(t *testing.T, url string) *browser {
	t.Helper()
	bin := ""
	for _, n := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(n); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		testenv.Skip(t, "chromium", "chromium is not installed (scripts/setup.sh --test installs it)")
	}
	profile := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--disable-dev-shm-usage", "--user-data-dir="+profile, "--remote-debugging-port=0",
		"--remote-allow-origins=http://127.0.0.1", "--window-size=1280,1900", url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	// Chromium writes the port it chose into the profile.
	var port string
	deadline := time.Now().Add(30 * time.Second)
	for port == "" {
		if time.Now().After(deadline) {
			t.Fatalf("chromium did not open its DevTools port; its stderr:\n%s", stderr.String())
		}
		if b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort")); err == nil {
			if l, _, ok := strings.Cut(string(b), "\n"); ok {
				port = l
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b := &browser{t: t, base: "http://127.0.0.1:" + port}
	var wsURL string
	for wsURL == "" {
		if time.Now().After(deadline) {
			t.Fatalf("chromium shows no page target")
		}
		resp, err := http.Get(b.base + "/json/list")
		if err == nil {
			var targets []struct{ Type, URL, WebSocketDebuggerURL string }
			json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
			for _, tg := range targets {
				if tg.Type == "page" && strings.HasPrefix(tg.URL, url) {
					wsURL = tg.WebSocketDebuggerURL
				}
			}
		}
		if wsURL == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	ws, err := websocket.Dial(wsURL, "", "http://127.0.0.1")
	if err != nil {
		t.Fatalf("connect to chromium's page: %v", err)
	}
	ws.MaxPayloadBytes = 64 << 20
	t.Cleanup(func() { ws.Close() })
	b.ws = ws
	return b
}

// call sends a DevTools command and returns its result, skipping events.
func (b *browser) call(method string, params any) json.RawMessage {
	b.t.Helper()
	b.id++
	msg := map[string]any{"id": b.id, "method": method, "params": params}
	if err := websocket.JSON.Send(b.ws, msg); err != nil {
		b.t.Fatalf("%s: %v", method, err)
	}
	b.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var r struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := websocket.JSON.Receive(b.ws, &r); err != nil {
			b.t.Fatalf("%s: %v", method, err)
		}
		if r.ID != b.id {
			continue
		}
		if r.Error != nil {
			b.t.Fatalf("%s: %s", method, r.Error.Message)
		}
		return r.Result
	}
}

// eval evaluates a JavaScript expression in the page and returns its
// value as JSON text.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	res := b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true})
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		b.t.Fatal(err)
	}
	if r.ExceptionDetails != nil {
		b.t.Fatalf("evaluate %s: %s", expr, r.ExceptionDetails.Text)
	}
	return string(r.Result.Value)
}

// waitFor evaluates expr until it is true.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for b.eval(expr) != "true" {
		if time.Now().After(deadline) {
			b.t.Fatalf("page never showed %s (%s); the page says:\n%s", what, expr, b.eval("document.body.innerText"))
		}
		time.Sleep(150 * time.Millisecond)
	}
}

func (b *browser) screenshot(path string) {
	b.t.Helper()
	res := b.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true})
	var r struct{ Data string }
	if err := json.Unmarshal(res, &r); err != nil {
		b.t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// count is the expression of a progress count on the page.
func count(k string) string {
	return fmt.Sprintf(`(document.querySelector("#count-%s b") || {}).textContent`, k)
}

// TestBrowser builds a small tree with the real scheduler on a gated
// executor while headless Chromium shows the page: the counts follow the
// database, the page updates as jobs finish without a reload, a hostile
// COMMENT and log line show as text, and once the scheduler is gone the
// page says so and how to resume.
func TestBrowser(t *testing.T) {
	pkgs := []schedtest.Pkg{
		{Name: "base-1.0"},
		{Name: "evil-1.0"}, // fails in configure, with a hostile COMMENT
		{Name: "tool-2.1", Deps: []string{"base-1.0"}},
		{Name: "app-1.0", Deps: []string{"evil-1.0"}},
		{Name: "app2-1.0", Deps: []string{"evil-1.0", "tool-2.1"}},
		{Name: "lib-3.0", Deps: []string{"base-1.0"}},
		{Name: "late-1.0", Deps: []string{"lib-3.0"}},
		{Name: "gone-1.0", Skip: "not for this platform"},
	}
	path := newBuild(t, pkgs, "evil-1.0")
	work, store := t.TempDir(), t.TempDir()
	ex := newGated(work, store, 2)

	rw, err := db.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	runDone := make(chan error, 1)
	go func() {
		_, err := sched.Run(ctx, rw, sched.RunOptions{Exec: ex, HeartbeatEvery: 200 * time.Millisecond})
		runDone <- err
	}()
	// Both slots busy: base-1.0 and evil-1.0 are the only ready packages.
	started := map[string]bool{<-ex.started: true, <-ex.started: true}
	if !started["base-1.0"] || !started["evil-1.0"] {
		t.Fatalf("started %v", started)
	}

	srv := httptest.NewServer(statuspage.New(statuspage.Options{DB: openRO(t, path), Database: path,
		Sources: func() statuspage.Sources {
			return statuspage.Sources{WorkRoot: work, StoreDir: store, StoreKind: "file"}
		},
		CacheFor: 50 * time.Millisecond}))
	defer srv.Close()
	b := startChromium(t, srv.URL+"/")
	t0 := time.Now()

	b.waitFor("2 running", count("running")+` === "2"`)
	for k, want := range map[string]string{"done": "0", "failed": "1", "indirect": "0", "queued": "5", "total": "8"} {
		if got := b.eval(count(k)); got != strconv.Quote(want) {
			t.Errorf("%s: page shows %s, want %s", k, got, want)
		}
	}
	b.waitFor("the live tail", `[...document.querySelectorAll("pre.tail")].some(p => p.textContent.includes("===> configure of evil-1.0"))`)
	b.waitFor("a running scheduler", `document.getElementById("scheduler").textContent.startsWith("scheduler running")`)
	// Mark this page load: a reload would lose it.
	b.eval(`window.loadedOnce = true`)

	ex.finish("base-1.0", job.StatusDone)
	b.waitFor("1 done", count("done")+` === "1"`)
	ex.finish("evil-1.0", job.StatusFailed)
	b.waitFor("evil-1.0 failed", count("failed")+` === "2"`)
	b.waitFor("2 indirect", count("indirect")+` === "2"`)
	b.waitFor("evil-1.0 in the failures, phase configure",
		`[...document.querySelectorAll("#failures tbody tr")].some(r => r.cells[0].firstChild.textContent === "evil-1.0" && r.cells[2].textContent === "configure" && r.cells[3].textContent === "2")`)
	b.waitFor("a link to its log", `!!document.querySelector('#failures a[href="logs/evil-1.0/configure.log"]')`)
	b.waitFor("the breakers", `document.getElementById("breakers").textContent.includes("evil-1.0 stops 2 packages")`)
	if b.eval(`window.loadedOnce === true`) != "true" {
		t.Error("the page was reloaded")
	}

	// The hostile COMMENT and log line are text: no script ran, no element
	// came from them.
	b.waitFor("the COMMENT as text", fmt.Sprintf(`[...document.querySelectorAll(".comment")].some(c => c.textContent === %s)`, strconv.Quote(hostile)))
	if got := b.eval(`document.title`); got != `"pkgbulk status"` {
		t.Errorf("title %s: script from the page's data ran", got)
	}
	if got := b.eval(`document.querySelectorAll("script").length + "/" + document.querySelectorAll("img").length`); got != `"1/0"` {
		t.Errorf("scripts/images on the page: %s", got)
	}
	// The log link serves text.
	resp, err := http.Get(srv.URL + "/logs/evil-1.0/configure.log")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/plain; charset=utf-8" {
		t.Errorf("log: %s %s", resp.Status, ct)
	}

	// Let the rest start and show the timeline with two builders.
	for range 2 {
		<-ex.started
	}
	b.waitFor("the timeline", `document.querySelectorAll("#timeline rect").length >= 4`)
	b.waitFor("the progress chart", `document.querySelectorAll("#history path").length === 2`)
	b.waitFor("2 builders", `document.querySelectorAll("#builders tbody tr").length === 2`)
	shot := filepath.Join(t.TempDir(), "statuspage.png")
	b.screenshot(shot)
	if png, err := os.ReadFile(shot); err == nil {
		os.WriteFile("/tmp/statuspage.png", png, 0o644)
	}
	t.Logf("screenshot %s (copied to /tmp/statuspage.png), page checked in %s", shot, time.Since(t0).Round(time.Millisecond))

	// The scheduler goes away with work left: the page says so and how to
	// resume.
	stop()
	if err := <-runDone; !errors.As(err, new(*sched.InterruptedError)) {
		t.Fatalf("run: %v", err)
	}
	b.waitFor("no scheduler running", `document.getElementById("scheduler").textContent.startsWith("no scheduler running since")`)
	b.waitFor("how to resume", `document.getElementById("resume").textContent.includes("pkgsched run --db bulk.db")`)
	if b.eval(`window.loadedOnce === true`) != "true" {
		t.Error("the page was reloaded")
	}
	// What a kill -9 leaves: a job in_processing, a heartbeat that stopped.
	beat, _ := json.Marshal(sched.Heartbeat{AtMS: time.Now().Add(-time.Minute).UnixMilli(), PID: 1 << 30, Host: "builder9"})
	if _, err := rw.Exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('pkgsched.heartbeat', ?)`, string(beat)); err != nil {
		t.Fatal(err)
	}
	if _, err := rw.Exec(`UPDATE build_state SET state = 'in_processing', worker = 'local/1', started_at = ? WHERE pkg_id = (SELECT id FROM packages WHERE pkgname = 'lib-3.0')`, time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	b.waitFor("a killed scheduler", `document.getElementById("scheduler").textContent.includes("pid 1073741824 on builder9 is gone")`)
	b.waitFor("the stale jobs noted", `!!document.querySelector("#running p.stale")`)
	stopped := filepath.Join(t.TempDir(), "stopped.png")
	b.screenshot(stopped)
	if png, err := os.ReadFile(stopped); err == nil {
		os.WriteFile("/tmp/statuspage-stopped.png", png, 0o644)
	}
}
