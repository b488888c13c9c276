package storeopen_test

import (
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
)

func TestFlags(t *testing.T) {
	var cli struct {
		Store storeopen.Flags `embed:""`
	}
	p, err := kong.New(&cli)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Parse([]string{"--s3-endpoint=http://127.0.0.1:9000", "--known-hosts=/etc/ssh/kh", "--connect-timeout=3s"}); err != nil {
		t.Fatal(err)
	}
	o := cli.Store.Options()
	if o.S3Endpoint != "http://127.0.0.1:9000" || o.KnownHosts != "/etc/ssh/kh" || o.ConnectTimeout != 3*time.Second {
		t.Errorf("Options() = %+v", o)
	}
}
