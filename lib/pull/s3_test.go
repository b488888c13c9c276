package pull

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
)

// TestS3Store: with an S3 store (a real versitygw), the worker's uploads
// go through the server (it never sees the keys), wait under staging/ and
// are promoted after the result; nothing is left in staging/.
func TestS3Store(t *testing.T) {
	s3 := storetest.StartS3(t)
	ctx := context.Background()
	st, err := storeopen.Open(ctx, "s3://"+s3.Bucket+"/repo", storeopen.Options{StoreAccess: job.StoreAccess{S3Endpoint: s3.Endpoint, S3Region: s3.Region},
		S3AccessKey: s3.AccessKey, S3SecretKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dbPath := filepath.Join(t.TempDir(), "bulk.db")
	d, err := db.Create(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	e := &testEnv{t: t, dbPath: dbPath, stDir: t.TempDir()}
	e.start(func(c *Config) {
		c.Store = st
		c.Settings = job.Settings{Store: "s3://" + s3.Bucket + "/repo", StoreAccess: &job.StoreAccess{S3Endpoint: s3.Endpoint}}
	})
	c := e.worker("s3w")
	sl, leases := e.acquire(c)
	done := run(sl, "obj-1.0")
	l := getLease(t, leases)
	if l.Settings.Store != "" || l.Settings.StoreAccess != nil {
		t.Errorf("the lease carries the store: %+v", l.Settings)
	}
	uploadAll(t, c, l, "s3")
	staged := 0
	st.List(ctx, StagingPrefix, func(store.Info) error { staged++; return nil })
	if staged != 3 {
		t.Errorf("%d objects staged, want 3", staged)
	}
	if _, err := c.Report(ctx, l.Ref(), doneResult("obj-1.0")); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	rc, err := st.Get(ctx, "All/obj-1.0.tgz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "s3 All/obj-1.0.tgz" {
		t.Errorf("promoted package %q", b)
	}
	left := 0
	st.List(ctx, StagingPrefix, func(store.Info) error { left++; return nil })
	if left != 0 {
		t.Errorf("%d staged objects left", left)
	}
}
