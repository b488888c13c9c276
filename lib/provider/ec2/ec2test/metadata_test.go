package ec2test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/imds"
	"github.com/pkgbulk/pkgbulk/lib/imds/imdstest"
)

// TestMetadata: an instance's metadata service answers IMDSv2 only, with
// its own user data; a spot instance's spot notices come from the real
// metadata mock (none while the mock is down), an on-demand instance has
// none even when the mock has one.
func TestMetadata(t *testing.T) {
	mock := imdstest.Start(t, "spot", "--action", "terminate")
	ud := []byte("server=https://169.254.0.100:1\ntoken=x\n")
	spot, err := startMetadata(ud, true, mock.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer spot.close()
	od, err := startMetadata(ud, false, mock.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer od.close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	c := imds.NewClient(imds.Config{URL: "http://" + spot.addr})
	if b, err := c.UserData(ctx); err != nil || string(b) != string(ud) {
		t.Errorf("user data %q, %v", b, err)
	}
	resp, err := http.Get("http://" + spot.addr + imds.UserDataPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("user data without a token: %s", resp.Status)
	}
	if n, err := c.SpotNotice(ctx); err != nil || n == nil || n.Action != "terminate" {
		t.Errorf("spot instance: notice %+v, %v", n, err)
	}
	if n, err := imds.NewClient(imds.Config{URL: "http://" + od.addr}).SpotNotice(ctx); err != nil || n != nil {
		t.Errorf("on-demand instance: notice %+v, %v", n, err)
	}
	mock.Stop()
	if _, err := c.SpotNotice(ctx); err == nil || errors.Is(err, imds.ErrNotFound) {
		t.Errorf("with the mock down: %v, want a failure", err)
	}
}
