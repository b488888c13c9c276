package sign

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
)

// TestSignRemoteStores signs packages in a real S3 server (versitygw) and a
// real sshd's sftp on loopback, then re-runs and verifies.
func TestSignRemoteStores(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	x := testX509(t)
	s, err := LoadX509Signer(x.LeafKey, x.Leaf, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"s3", "sftp"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			var url string
			var o storeopen.Options
			if kind == "s3" {
				srv := storetest.StartS3(t)
				url = srv.URL("signtest")
				o = storeopen.Options{StoreAccess: job.StoreAccess{S3Endpoint: srv.Endpoint, S3Region: srv.Region}, S3AccessKey: srv.AccessKey, S3SecretKey: srv.SecretKey}
			} else {
				srv := storetest.StartSSHD(t)
				url = srv.URL("signtest")
				o = storeopen.Options{StoreAccess: job.StoreAccess{SSHIdentity: srv.IdentityFile, KnownHosts: srv.KnownHosts}}
			}
			st, err := storeopen.Open(ctx, url, o)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			orig := map[string][]byte{}
			for i := 0; i < 2; i++ {
				name := fmt.Sprintf("All/remote%d-1.0.tgz", i)
				b := makePackage(t, filepath.Join(t.TempDir(), "p.tgz"), fmt.Sprintf("remote%d-1.0", i), 3000+70000*i, uint64(i))
				if err := st.Put(ctx, name, bytes.NewReader(b), int64(len(b))); err != nil {
					t.Fatal(err)
				}
				orig[name] = b
			}
			rep, err := SignStore(ctx, st, s, Options{TempDir: t.TempDir()})
			if err != nil || rep.Signed != 2 {
				t.Fatalf("sign %s: %v %+v", url, err, rep)
			}
			rep, err = SignStore(ctx, st, s, Options{TempDir: t.TempDir()})
			if err != nil || rep.Skipped != 2 {
				t.Fatalf("re-run on %s: %v %+v", url, err, rep)
			}
			res, err := VerifyStore(ctx, st, ".tgz", s.Verifier())
			if err != nil || len(res) != 2 {
				t.Fatal(err, len(res))
			}
			for _, r := range res {
				if !r.OK() {
					t.Fatalf("%+v", r)
				}
				rc, err := st.Get(ctx, r.File)
				if err != nil {
					t.Fatal(err)
				}
				var inner bytes.Buffer
				_, err = ExtractInner(store.CtxReader(ctx, rc), &inner)
				rc.Close()
				if err != nil || !bytes.Equal(inner.Bytes(), orig[r.File]) {
					t.Fatalf("%s: inner package differs: %v", r.File, err)
				}
			}
		})
	}
}
