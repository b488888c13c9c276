package build

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
)

// writeSettings writes a job document.
func writeSettings(t *testing.T, s job.Settings) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCommandRemoteStores runs pkgrun's command on a leaf package of
// examples/tree into an s3:// store on a real versitygw and an sftp://
// store on a real sshd, the way to reach them given by the store-access
// flags or by the job document's store_access, never by the store URL or
// AWS_ENDPOINT_URL*. The package and its fragment must be in the store
// afterwards.
func TestCommandRemoteStores(t *testing.T) {
	e := newEnv(t)
	const loc = "textproc/exwords"
	rec := e.record(loc)
	pkgname := strings.TrimPrefix(strings.SplitN(rec, "\n", 2)[0], "PKGNAME=")
	s3 := storetest.StartS3(t)
	ssh := storetest.StartSSHD(t)
	// Only the keys come from the environment.
	t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
	for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "SSH_AUTH_SOCK"} {
		t.Setenv(k, "")
	}
	// No ~/.ssh to fall back on.
	t.Setenv("HOME", t.TempDir())

	base := job.Settings{Pkgsrc: e.tree, Make: e.make, WorkRoot: e.work, MaxTime: "5m"}
	s3URL := func(prefix string) string { return fmt.Sprintf("s3://%s/%s", s3.Bucket, prefix) }
	s3Opts := storeopen.Options{StoreAccess: job.StoreAccess{S3Endpoint: s3.Endpoint, S3Region: s3.Region}, S3AccessKey: s3.AccessKey, S3SecretKey: s3.SecretKey}
	sshOpts := storeopen.Options{StoreAccess: job.StoreAccess{SSHIdentity: ssh.IdentityFile, KnownHosts: ssh.KnownHosts}}

	withDoc := base
	withDoc.Store = s3URL("doc")
	withDoc.StoreAccess = &job.StoreAccess{S3Endpoint: s3.Endpoint, S3Region: s3.Region, ConnectTimeout: job.Duration(20 * time.Second)}
	// A document whose endpoint is wrong: the flag must win.
	wrongEndpoint := withDoc
	wrongEndpoint.StoreAccess = &job.StoreAccess{S3Endpoint: "http://127.0.0.1:1", S3Region: s3.Region}
	// A document whose connect_timeout is not a duration: an error
	// naming the document.
	badTimeout := filepath.Join(t.TempDir(), "bad-timeout.json")
	if err := os.WriteFile(badTimeout, []byte(`{"store":"`+s3URL("doc")+`","store_access":{"connect_timeout":"soon"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	sftpDoc := base
	sftpDoc.Store = ssh.URL("doc")
	sftpDoc.StoreAccess = &job.StoreAccess{SSHIdentity: ssh.IdentityFile, KnownHosts: ssh.KnownHosts}

	tests := []struct {
		name   string
		args   []string
		url    string // the store to look in afterwards
		opts   storeopen.Options
		code   int
		status job.Status
		stderr string
	}{
		{name: "s3 flags", args: []string{"--job", writeSettings(t, base), "--store", s3URL("flags"),
			"--s3-endpoint", s3.Endpoint, "--s3-region", s3.Region},
			url: s3URL("flags"), opts: s3Opts, status: job.StatusDone},
		{name: "s3 job document", args: []string{"--job", writeSettings(t, withDoc)},
			url: s3URL("doc"), opts: s3Opts, status: job.StatusDone},
		// Up to date means pkgrun read the package of the previous case
		// through the endpoint of the flag.
		{name: "s3 flag overrides document", args: []string{"--job", writeSettings(t, wrongEndpoint), "--s3-endpoint", s3.Endpoint},
			url: s3URL("doc"), opts: s3Opts, status: job.StatusUpToDate},
		{name: "s3 bad connect_timeout", args: []string{"--job", badTimeout},
			code: 2, stderr: badTimeout + `: store_access: connect_timeout: bad duration "soon"`},
		{name: "sftp flags", args: []string{"--job", writeSettings(t, base), "--store", ssh.URL("flags"),
			"--ssh-identity", ssh.IdentityFile, "--known-hosts", ssh.KnownHosts, "--connect-timeout", "20s"},
			url: ssh.URL("flags"), opts: sshOpts, status: job.StatusDone},
		{name: "sftp job document", args: []string{"--job", writeSettings(t, sftpDoc), "--force"},
			url: ssh.URL("doc"), opts: sshOpts, status: job.StatusDone},
		{name: "sftp without known hosts", args: []string{"--job", writeSettings(t, base), "--store", ssh.URL("none"),
			"--ssh-identity", ssh.IdentityFile},
			code: 2, stderr: "known_hosts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCommand(t, rec, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stdout %q; stderr:\n%s", code, tt.code, out, errs)
			}
			if !strings.Contains(errs, tt.stderr) {
				t.Errorf("stderr %q lacks %q", errs, tt.stderr)
			}
			if tt.status == "" {
				if out != "" {
					t.Errorf("stdout %q, want nothing when the job could not run", out)
				}
				return
			}
			res, err := job.DecodeResult([]byte(out))
			if err != nil {
				t.Fatalf("stdout %q: %v", out, err)
			}
			if res.Status != tt.status || res.PkgName != pkgname {
				t.Fatalf("%s: %s (%s), want %s of %s", res.PkgName, res.Status, res.Message, tt.status, pkgname)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			st, err := storeopen.Open(ctx, tt.url, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for _, name := range []string{"All/" + pkgname + ".tgz", "index/" + pkgname + ".pkginfo"} {
				if info, err := st.Stat(ctx, name); err != nil || info.Size == 0 {
					t.Errorf("%s in %s: %+v %v", name, tt.url, info, err)
				}
			}
		})
	}
}

// TestStoreAccessSettings checks how the store-access flags and the job
// document's store_access combine: a flag overrides the document,
// --connect-timeout only when it was given (its default must not hide the
// document's value).
func TestStoreAccessSettings(t *testing.T) {
	doc := writeSettings(t, job.Settings{Store: "s3://b/p", StoreAccess: &job.StoreAccess{
		S3Endpoint: "http://127.0.0.1:9000", S3Region: "r1", SSHIdentity: "/k", ConnectTimeout: job.Duration(40 * time.Second)}})
	plain := writeSettings(t, job.Settings{Store: "s3://b/p"})
	tests := []struct {
		name string
		args []string
		want *job.StoreAccess
	}{
		{name: "nothing", args: []string{"--job", plain}, want: nil},
		{name: "default timeout is not a setting", args: []string{"--store", "s3://b/p"}, want: nil},
		{name: "flags", args: []string{"--job", plain, "--s3-endpoint", "http://h:1", "--s3-allow-http", "--known-hosts", "/kh", "--connect-timeout", "5s"},
			want: &job.StoreAccess{S3Endpoint: "http://h:1", S3AllowHTTP: true, KnownHosts: "/kh", ConnectTimeout: job.Duration(5 * time.Second)}},
		{name: "document", args: []string{"--job", doc},
			want: &job.StoreAccess{S3Endpoint: "http://127.0.0.1:9000", S3Region: "r1", SSHIdentity: "/k", ConnectTimeout: job.Duration(40 * time.Second)}},
		{name: "flags override the document", args: []string{"--job", doc, "--s3-region", "r2", "--connect-timeout", "15s"},
			want: &job.StoreAccess{S3Endpoint: "http://127.0.0.1:9000", S3Region: "r2", SSHIdentity: "/k", ConnectTimeout: job.Duration(15 * time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Command
			p, err := kong.New(&c)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			s, err := c.settings()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(s.StoreAccess)
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) {
				t.Errorf("store_access %s, want %s", got, want)
			}
		})
	}
}
