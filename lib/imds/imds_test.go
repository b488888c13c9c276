package imds_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/imds"
	"github.com/pkgbulk/pkgbulk/lib/imds/imdstest"
)

// TestSpotNoticeFromMock runs the real amazon-ec2-metadata-mock (IMDSv2
// only) with a spot interruption due 3 seconds after it starts: before
// then there is no notice, and the Watcher returns the mock's notice
// (action terminate, a time in the near future) once it is there.
func TestSpotNoticeFromMock(t *testing.T) {
	m := imdstest.Start(t, "spot", "--action", "terminate", "--mock-delay-sec", "3")
	start := time.Now()
	c := imds.NewClient(imds.Config{URL: m.URL})
	ctx := context.Background()
	n, err := c.SpotNotice(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != nil && time.Since(start) < 2*time.Second {
		t.Fatalf("a notice before the mock's delay: %+v", n)
	}
	// Without a token, IMDSv2 refuses: the client must have used one.
	resp, err := http.Get(m.URL + imds.SpotActionPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the mock answered a GET without a token with %s; want 401 (is it IMDSv2 only?)", resp.Status)
	}

	var errs atomic.Int32
	w := imds.NewWatcher(imds.Config{URL: m.URL, Interval: 200 * time.Millisecond, OnError: func(error) { errs.Add(1) }})
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	got, err := w.Wait(wctx)
	if err != nil {
		t.Fatal(err)
	}
	waited := time.Since(start)
	if got.Action != "terminate" {
		t.Errorf("action %q, want terminate", got.Action)
	}
	if got.Time.Before(start.Add(-time.Minute)) || got.Time.After(time.Now().Add(10*time.Minute)) {
		t.Errorf("notice time %v is not near now", got.Time)
	}
	if waited < 2*time.Second {
		t.Errorf("the notice came after %v, before the mock's 3s delay", waited)
	}
	if errs.Load() != 0 {
		t.Errorf("%d polls failed", errs.Load())
	}
	t.Logf("notice %+v after %v", got, waited.Round(time.Millisecond))
}

// TestWaitEndsWithContext: no notice ever, the service down half the
// time: Wait returns the context's error, and the failed polls went to
// OnError.
func TestWaitEndsWithContext(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case imds.TokenPath:
			if r.Method != http.MethodPut || r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
				http.Error(w, "bad token request", http.StatusBadRequest)
				return
			}
			w.Write([]byte("tok"))
		default:
			if r.Header.Get("X-aws-ec2-metadata-token") != "tok" {
				http.Error(w, "no token", http.StatusUnauthorized)
				return
			}
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	var errs atomic.Int32
	w := imds.NewWatcher(imds.Config{URL: srv.URL, Interval: 10 * time.Millisecond, OnError: func(error) { errs.Add(1) }})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := w.Wait(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait: %v, want the deadline", err)
	}
	if errs.Load() == 0 {
		t.Error("no failed poll was reported")
	}
}

// TestTokenRenewedAfter401: the service forgets its tokens (a restart);
// the client fetches a new one and the read succeeds.
func TestTokenRenewedAfter401(t *testing.T) {
	var gen atomic.Int32
	gen.Store(1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur := string(rune('0' + gen.Load()))
		if r.URL.Path == imds.TokenPath {
			w.Write([]byte("tok" + cur))
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token") != "tok"+cur {
			http.Error(w, "stale token", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"action":"stop","time":"2030-01-02T03:04:05Z"}`))
	}))
	defer srv.Close()
	c := imds.NewClient(imds.Config{URL: srv.URL})
	if _, err := c.SpotNotice(context.Background()); err != nil {
		t.Fatal(err)
	}
	gen.Store(2)
	n, err := c.SpotNotice(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n == nil || n.Action != "stop" || !n.Time.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("notice %+v", n)
	}
}

func TestParseNotice(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{`{"action":"terminate","time":"2017-09-18T08:22:00Z"}`, true},
		{`{"action":"hibernate","time":"2017-09-18T08:22:00Z"}`, true},
		{`{"action":"explode","time":"2017-09-18T08:22:00Z"}`, false},
		{`{"action":"stop"}`, false},
		{`{"action":"stop","time":"yesterday"}`, false},
		{`<html>`, false},
		{``, false},
	} {
		_, err := imds.ParseNotice([]byte(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("ParseNotice(%q): %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

func FuzzParseNotice(f *testing.F) {
	f.Add([]byte(`{"action":"terminate","time":"2017-09-18T08:22:00Z"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := imds.ParseNotice(b)
		if err == nil && (n.Action == "" || n.Time.IsZero()) {
			t.Fatalf("accepted %q as %+v", b, n)
		}
	})
}

// TestUserDataFromMock: the real amazon-ec2-metadata-mock serves the
// user data of its configuration file (IMDSv2 only: a GET without a token
// is refused) and FetchUserData reads it byte for byte.
func TestUserDataFromMock(t *testing.T) {
	ud := []byte("server=https://10.0.0.5:8443\nname=b1\nlabel=a=b\ntoken=pkgbulk_x\n")
	args := append(imdstest.UserData(t, ud), "--mock-delay-sec", "86400")
	m := imdstest.Start(t, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := imds.FetchUserData(ctx, imds.NewClient(imds.Config{URL: m.URL}))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(ud) {
		t.Errorf("user data %q, want %q", got, ud)
	}
	resp, err := http.Get(m.URL + imds.UserDataPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("user data without a token: %s, want 401", resp.Status)
	}
}

// TestFetchUserData: a service that fails at first is tried again; an
// instance without user data (404) is an error at once; a service that
// never answers ends with the context.
func TestFetchUserData(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fails   int32 // replies 503 this many times first
		status  int   // then this reply to GET /latest/user-data
		wantErr string
	}{
		{"answers", 0, http.StatusOK, ""},
		{"fails then answers", 3, http.StatusOK, ""},
		{"no user data", 0, http.StatusNotFound, "no user data"},
		{"always fails", 1000, http.StatusOK, "gave up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) <= tc.fails {
					http.Error(w, "down", http.StatusServiceUnavailable)
					return
				}
				switch {
				case r.URL.Path == imds.TokenPath && r.Method == http.MethodPut:
					w.Write([]byte("tok"))
				case r.URL.Path == imds.UserDataPath && r.Header.Get("X-aws-ec2-metadata-token") == "tok":
					if tc.status != http.StatusOK {
						http.Error(w, "no", tc.status)
						return
					}
					w.Write([]byte("server=https://m:1\n"))
				default:
					http.Error(w, "unauthorized", http.StatusUnauthorized)
				}
			}))
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			b, err := imds.FetchUserData(ctx, imds.NewClient(imds.Config{URL: srv.URL}))
			switch {
			case tc.wantErr == "" && (err != nil || string(b) != "server=https://m:1\n"):
				t.Errorf("got %q, %v", b, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one with %q", err, tc.wantErr)
			}
		})
	}
}
