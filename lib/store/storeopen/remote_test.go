package storeopen_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store"
	"github.com/pkgbulk/pkgbulk/lib/store/retry"
	"github.com/pkgbulk/pkgbulk/lib/store/s3store"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
)

// noEnv keeps the developer's AWS_* and SSH_AUTH_SOCK out of the tests.
func env(kv ...string) func(string) string {
	m := map[string]string{"HOME": "/nonexistent"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// roundTrip puts, gets, lists and deletes one object through s.
func roundTrip(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	if err := s.Put(ctx, "All/rt-1.0.tgz", strings.NewReader("round trip"), -1); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "All/rt-1.0.tgz")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(b) != "round trip" {
		t.Fatalf("Get = %q, %v", b, err)
	}
	n := 0
	if err := s.List(ctx, "All/", func(store.Info) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("List: %d objects, %v", n, err)
	}
	if err := s.Delete(ctx, "All/rt-1.0.tgz"); err != nil {
		t.Fatal(err)
	}
}

func TestSFTP(t *testing.T) {
	srv := storetest.StartSSHD(t)
	ctx := context.Background()
	good := storeopen.Options{StoreAccess: job.StoreAccess{SSHIdentity: srv.IdentityFile, KnownHosts: srv.KnownHosts}, Getenv: env()}

	t.Run("RoundTrip", func(t *testing.T) {
		s, err := storeopen.Open(ctx, srv.URL("rt"), good)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		roundTrip(t, s)
		if want := srv.URL("rt"); s.String() != want {
			t.Errorf("String() = %q, want %q", s.String(), want)
		}
	})

	t.Run("Agent", func(t *testing.T) {
		sock := startAgent(t, srv.IdentityFile)
		opts := storeopen.Options{StoreAccess: job.StoreAccess{KnownHosts: srv.KnownHosts}, Getenv: env("SSH_AUTH_SOCK", sock)}
		s, err := storeopen.Open(ctx, srv.URL("agent"), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		roundTrip(t, s)
	})

	t.Run("UnknownHostKey", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(empty, []byte("# no keys\n"), 0o600)
		opts := good
		opts.KnownHosts = empty
		_, err := storeopen.Open(ctx, srv.URL("x"), opts)
		if err == nil {
			t.Fatal("Open with an empty known_hosts succeeded")
		}
		t.Log(err)
		for _, want := range []string{"unknown", "127.0.0.1", empty} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if !store.IsPermanent(err) {
			t.Errorf("unknown host key is not a permanent error: %v", err)
		}
	})

	t.Run("ChangedHostKey", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		pub, _ := os.ReadFile(other + ".pub")
		f := strings.Fields(string(pub))
		kh := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(kh, fmt.Appendf(nil, "[127.0.0.1]:%d %s %s\n", srv.Port, f[0], f[1]), 0o600)
		opts := good
		opts.KnownHosts = kh
		_, err := storeopen.Open(ctx, srv.URL("x"), opts)
		t.Log(err)
		if err == nil || !strings.Contains(err.Error(), "MISMATCH") || !strings.Contains(err.Error(), kh) {
			t.Errorf("Open with a changed host key: %v", err)
		}
	})

	t.Run("MissingKnownHosts", func(t *testing.T) {
		opts := good
		opts.KnownHosts = filepath.Join(t.TempDir(), "none")
		_, err := storeopen.Open(ctx, srv.URL("x"), opts)
		if err == nil || !strings.Contains(err.Error(), opts.KnownHosts) || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("Open without a known_hosts file: %v", err)
		}
	})

	t.Run("WrongKey", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "stranger")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		opts := good
		opts.SSHIdentity = other
		_, err := storeopen.Open(ctx, srv.URL("x"), opts)
		t.Log(err)
		if err == nil || !store.IsPermanent(err) || !strings.Contains(err.Error(), "login") {
			t.Errorf("Open with a key the server does not know: %v", err)
		}
	})

	t.Run("Unreachable", func(t *testing.T) {
		url := "sftp://" + srv.User + "@" + storetest.ClosedPortAddr(t) + "/x"
		opts := good
		opts.ConnectTimeout = job.Duration(3 * time.Second)
		start := time.Now()
		_, err := storeopen.Open(ctx, url, opts)
		if err == nil || !strings.Contains(err.Error(), url) {
			t.Errorf("Open(%s) error = %v, want one naming the URL", url, err)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("Open of a closed port took %v", d)
		}
	})

	t.Run("Reconnect", func(t *testing.T) {
		retries := 0
		opts := good
		opts.Retry.Notify = func(op, name string, err error, _ time.Duration) {
			retries++
			t.Logf("retrying %s %s: %v", op, name, err)
		}
		s, err := storeopen.Open(ctx, srv.URL("reconnect"), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Put(ctx, "All/a-1.tgz", strings.NewReader("a"), 1); err != nil {
			t.Fatal(err)
		}
		if n := srv.DropSessions(); n == 0 {
			t.Fatal("no sshd session to drop")
		}
		// The first attempt finds the connection dead; the retry
		// decorator's next attempt reconnects.
		if fi, err := s.Stat(ctx, "All/a-1.tgz"); err != nil || fi.Size != 1 {
			t.Errorf("Stat after the connection dropped: %+v, %v", fi, err)
		}
		if retries == 0 {
			t.Error("the dropped connection went unnoticed: no retry")
		}
		if err := s.Delete(ctx, "All/a-1.tgz"); err != nil {
			t.Fatal(err)
		}
		roundTrip(t, s)
	})

	t.Run("ServerGone", func(t *testing.T) {
		srv := storetest.StartSSHD(t)
		opts := storeopen.Options{StoreAccess: job.StoreAccess{SSHIdentity: srv.IdentityFile, KnownHosts: srv.KnownHosts, ConnectTimeout: job.Duration(3 * time.Second)}, Getenv: env()}
		s, err := storeopen.Open(ctx, srv.URL("gone"), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		srv.Stop()
		start := time.Now()
		_, err = s.Stat(ctx, "All/x-1.tgz")
		if err == nil || store.IsNotExist(err) || !strings.Contains(err.Error(), srv.URL("gone")) {
			t.Errorf("Stat with the server gone: %v", err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("Stat with the server gone took %v (retries must be bounded)", d)
		}
		t.Logf("gave up after %v: %v", time.Since(start), err)
	})
}

// startAgent runs a real ssh-agent holding key and returns its socket.
func startAgent(t *testing.T, key string) string {
	agentBin, err := exec.LookPath("ssh-agent")
	if err != nil {
		t.Skip("ssh-agent is not installed")
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	cmd := exec.Command(agentBin, "-D", "-a", sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	return sock
}

func TestS3(t *testing.T) {
	srv := storetest.StartS3(t)
	ctx := context.Background()
	good := storeopen.Options{StoreAccess: job.StoreAccess{S3Region: srv.Region}, S3AccessKey: srv.AccessKey, S3SecretKey: srv.SecretKey, Getenv: env()}

	t.Run("RoundTrip", func(t *testing.T) {
		s, err := storeopen.Open(ctx, srv.URL("rt"), good)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		roundTrip(t, s)
		if strings.Contains(s.String(), srv.SecretKey) || strings.Contains(s.String(), srv.AccessKey) {
			t.Errorf("String() = %q carries credentials", s.String())
		}
	})

	t.Run("Env", func(t *testing.T) {
		for _, epVar := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
			opts := storeopen.Options{Getenv: env(
				epVar, srv.Endpoint,
				"AWS_ACCESS_KEY_ID", srv.AccessKey,
				"AWS_SECRET_ACCESS_KEY", srv.SecretKey,
				"AWS_REGION", srv.Region)}
			s, err := storeopen.Open(ctx, "s3://"+srv.Bucket+"/env", opts)
			if err != nil {
				t.Fatalf("with %s: %v", epVar, err)
			}
			roundTrip(t, s)
			s.Close()
		}
	})

	t.Run("CredentialsFile", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "credentials")
		os.WriteFile(file, fmt.Appendf(nil, "[build]\naws_access_key_id = %s\naws_secret_access_key = %s\n", srv.AccessKey, srv.SecretKey), 0o600)
		opts := storeopen.Options{Getenv: env("AWS_SHARED_CREDENTIALS_FILE", file, "AWS_PROFILE", "build", "AWS_REGION", srv.Region)}
		s, err := storeopen.Open(ctx, srv.URL("file"), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		roundTrip(t, s)
	})

	t.Run("WrongCredentials", func(t *testing.T) {
		opts := good
		opts.S3SecretKey = "wrong" + srv.SecretKey
		_, err := storeopen.Open(ctx, srv.URL("x"), opts)
		t.Log(err)
		if err == nil || !store.IsPermanent(err) || !strings.Contains(err.Error(), srv.Bucket) {
			t.Errorf("Open with a wrong secret: %v (want a permanent error naming the bucket)", err)
		}
		if err != nil && strings.Contains(err.Error(), opts.S3SecretKey) {
			t.Errorf("error leaks the secret: %v", err)
		}
		// Past Open (no bucket check), the retry decorator must not retry.
		cfg, _ := s3store.ParseURL(srv.URL("x"))
		cfg.Region, cfg.NoCheck = srv.Region, true
		cfg.Creds = credentials.NewStaticV4(srv.AccessKey, "wrong", "")
		raw, err := s3store.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		retries := 0
		s := retry.New(raw, retry.Options{Notify: func(string, string, error, time.Duration) { retries++ }})
		_, err = s.Stat(ctx, "All/x-1.tgz")
		if err == nil || !store.IsPermanent(err) || store.IsNotExist(err) || retries != 0 {
			t.Errorf("Stat with a wrong secret: %v after %d retries, want a permanent error and none", err, retries)
		}
		err = s.Put(ctx, "All/x-1.tgz", strings.NewReader("x"), 1)
		if err == nil || !store.IsPermanent(err) || retries != 0 {
			t.Errorf("Put with a wrong secret: %v after %d retries", err, retries)
		}
	})

	t.Run("MissingBucket", func(t *testing.T) {
		_, err := storeopen.Open(ctx, "s3://no-such-bucket-here/p?endpoint="+srv.Endpoint, good)
		t.Log(err)
		if err == nil || !strings.Contains(err.Error(), "no-such-bucket-here") || !strings.Contains(err.Error(), srv.Endpoint) {
			t.Errorf("Open of a missing bucket: %v (want the bucket and endpoint named)", err)
		}
	})

	t.Run("PlainHTTPOffLoopback", func(t *testing.T) {
		_, err := storeopen.Open(ctx, "s3://b/p?endpoint=http://s3.example.org", good)
		if err == nil || !strings.Contains(err.Error(), "plain http") {
			t.Errorf("plain http off loopback: %v", err)
		}
	})

	t.Run("Unreachable", func(t *testing.T) {
		ep := "http://" + storetest.ClosedPortAddr(t)
		opts := good
		opts.ConnectTimeout = job.Duration(3 * time.Second)
		start := time.Now()
		_, err := storeopen.Open(ctx, "s3://"+srv.Bucket+"/x?endpoint="+ep, opts)
		if err == nil || !strings.Contains(err.Error(), ep) {
			t.Errorf("Open with endpoint %s: %v, want an error naming it", ep, err)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("Open of a closed port took %v", d)
		}
	})

	t.Run("ServerGone", func(t *testing.T) {
		srv := storetest.StartS3(t)
		opts := storeopen.Options{StoreAccess: job.StoreAccess{S3Region: srv.Region, ConnectTimeout: job.Duration(3 * time.Second)}, S3AccessKey: srv.AccessKey, S3SecretKey: srv.SecretKey, Getenv: env()}
		s, err := storeopen.Open(ctx, srv.URL("gone"), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		srv.Stop()
		start := time.Now()
		_, err = s.Stat(ctx, "All/x-1.tgz")
		if err == nil || store.IsNotExist(err) || !strings.Contains(err.Error(), srv.Endpoint) {
			t.Errorf("Stat with the server gone: %v", err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("Stat with the server gone took %v (retries must be bounded)", d)
		}
		t.Logf("gave up after %v: %v", time.Since(start), err)
	})

}
