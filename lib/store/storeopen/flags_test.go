package storeopen_test

import (
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
)

// TestFlags: job.StoreAccess embedded in a kong grammar gives the "Store
// access" flags, and they reach Options unchanged.
func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want job.StoreAccess
		err  string
	}{
		{[]string{"--s3-endpoint=http://127.0.0.1:9000", "--known-hosts=/etc/ssh/kh", "--connect-timeout=3s", "--s3-region=r", "--s3-allow-http", "--ssh-identity=/k"},
			job.StoreAccess{S3Endpoint: "http://127.0.0.1:9000", KnownHosts: "/etc/ssh/kh", ConnectTimeout: job.Duration(3 * time.Second), S3Region: "r", S3AllowHTTP: true, SSHIdentity: "/k"}, ""},
		{nil, job.StoreAccess{}, ""},
		{[]string{"--connect-timeout=soon"}, job.StoreAccess{}, "positive Go duration"},
		{[]string{"--connect-timeout=-1s"}, job.StoreAccess{}, "positive Go duration"},
	} {
		var cli struct {
			Access job.StoreAccess `embed:"" group:"Store access"`
		}
		p, err := kong.New(&cli)
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Parse(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if o := (storeopen.Options{StoreAccess: cli.Access}); o.StoreAccess != tc.want {
			t.Errorf("%v: %+v, want %+v", tc.args, o.StoreAccess, tc.want)
		}
	}
	if o := storeopen.AccessOptions(nil); o.StoreAccess != (job.StoreAccess{}) {
		t.Errorf("AccessOptions(nil) = %+v", o)
	}
}
