package schedcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/job"
	"github.com/pkgbulk/pkgbulk/lib/sched/schedtest"
	"github.com/pkgbulk/pkgbulk/lib/store/storeopen"
	"github.com/pkgbulk/pkgbulk/lib/store/storetest"
	"github.com/pkgbulk/pkgbulk/lib/testenv"
)

func runSched(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), "pkgsched", Description, &CLI{}, args,
		&cli.Globals{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

// TestReportS3Store runs pkgsched report with its logs in an s3:// store
// on a real versitygw, reached through --s3-endpoint and --s3-region (the
// keys from the environment): the failed package's logs are found only
// by listing the store, since the builder's result names none.
func TestReportS3Store(t *testing.T) {
	s3 := storetest.StartS3(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
	for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	pkgrun := filepath.Join(dir, "pkgrun")
	script := `#!/bin/sh
name=$(sed -n 's/^PKGNAME=//p')
printf '{"version":1,"pkgname":"%s","pkgpath":"test/a","status":"failed","failed_phase":"build","message":"make all failed"}\n' "$name"
exit 1
`
	if err := os.WriteFile(pkgrun, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "bulk.db")
	if err := schedtest.WriteDB(context.Background(), db, []schedtest.Pkg{{Name: "a-1.0"}}); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runSched(t, "run", "--db", db, "-j", "1", "--pkgrun", pkgrun, "--work-root", t.TempDir()); code != 1 {
		t.Fatalf("run: exit %d, want 1\n%s\n%s", code, out, errs)
	}

	url := "s3://" + s3.Bucket + "/repo"
	ctx := context.Background()
	st, err := storeopen.Open(ctx, url, storeopen.Options{StoreAccess: job.StoreAccess{S3Endpoint: s3.Endpoint, S3Region: s3.Region}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, n := range []string{"bulklog/a-1.0/build.log", "bulklog/a-1.0/configure.log"} {
		if err := st.Put(ctx, n, strings.NewReader("log\n"), -1); err != nil {
			t.Fatal(err)
		}
	}

	out := filepath.Join(dir, "meta")
	code, stdout, errs := runSched(t, "report", "--db", db, "-o", out, "--store", url, "--s3-endpoint", s3.Endpoint, "--s3-region", s3.Region,
		"--log-url-base", "https://logs.example.org")
	if code != 0 {
		t.Fatalf("report: exit %d\n%s\n%s", code, stdout, errs)
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"https://logs.example.org/a-1.0/build.log", "https://logs.example.org/a-1.0/configure.log"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report.html lacks a link to %s", want)
		}
	}

}

// TestRunStoreAccess runs pkgsched run with a pkgrun that keeps the job
// document it was given, and checks that the store-access flags reach it
// as store_access, over those of pkgsched's own --job document, and
// --connect-timeout only when it was given.
func TestRunStoreAccess(t *testing.T) {
	dir := t.TempDir()
	kept := filepath.Join(dir, "kept.json")
	pkgrun := filepath.Join(dir, "pkgrun")
	script := `#!/bin/sh
while [ $# -gt 0 ]; do
	if [ "$1" = --job ]; then cp "$2" '` + kept + `'; fi
	shift
done
name=$(sed -n 's/^PKGNAME=//p')
printf '{"version":1,"pkgname":"%s","pkgpath":"test/a","status":"done"}\n' "$name"
`
	if err := os.WriteFile(pkgrun, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	docFile := filepath.Join(dir, "job.json")
	doc := `{"store":"s3://b/p","store_access":{"s3_endpoint":"http://127.0.0.1:9000","s3_region":"r1","connect_timeout":"40s"}}`
	if err := os.WriteFile(docFile, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	badDoc := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badDoc, []byte(`{"store_access":{"connect_timeout":"soon"}}`), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		args   []string
		code   int
		want   *job.StoreAccess
		stderr string
	}{
		{name: "none", args: []string{"--store", "s3://b/p"}, want: nil},
		{name: "flags", args: []string{"--store", "sftp://u@h/d", "--ssh-identity", "/k", "--known-hosts", "/kh", "--connect-timeout", "5s"},
			want: &job.StoreAccess{SSHIdentity: "/k", KnownHosts: "/kh", ConnectTimeout: job.Duration(5 * time.Second)}},
		{name: "document", args: []string{"--job", docFile},
			want: &job.StoreAccess{S3Endpoint: "http://127.0.0.1:9000", S3Region: "r1", ConnectTimeout: job.Duration(40 * time.Second)}},
		{name: "flags override the document", args: []string{"--job", docFile, "--s3-endpoint", "http://10.0.0.1:9000", "--s3-allow-http"},
			want: &job.StoreAccess{S3Endpoint: "http://10.0.0.1:9000", S3Region: "r1", S3AllowHTTP: true, ConnectTimeout: job.Duration(40 * time.Second)}},
		{name: "bad timeout", args: []string{"--job", badDoc}, code: 2, stderr: "connect_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(kept)
			db := filepath.Join(t.TempDir(), "bulk.db")
			if err := schedtest.WriteDB(context.Background(), db, []schedtest.Pkg{{Name: "a-1.0"}}); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			args := append([]string{"run", "--db", db, "-j", "1", "--pkgrun", pkgrun, "--work-root", t.TempDir(), "--no-store-check"}, tt.args...)
			code := cli.Run(context.Background(), "pkgsched", Description, &CLI{}, args,
				&cli.Globals{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tt.code, out.String(), errb.String())
			}
			if !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("stderr %q lacks %q", errb.String(), tt.stderr)
			}
			if tt.code != 0 {
				return
			}
			b, err := os.ReadFile(kept)
			if err != nil {
				t.Fatalf("pkgrun got no job document: %v", err)
			}
			var s job.Settings
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(s.StoreAccess)
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) {
				t.Errorf("store_access %s, want %s\ndocument: %s", got, want, b)
			}
		})
	}
}

// TestRunRemoteStoresEndToEnd runs pkgsched run with the real pkgrun (built
// from cmd/pkgrun) on a leaf package of examples/tree, into an s3:// store
// on a real versitygw and an sftp:// store on a real sshd, reached only
// through pkgsched's store-access flags (the S3 keys from the
// environment).
func TestRunRemoteStoresEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds pkgrun and a package")
	}
	mk := testenv.Program(t, "bmake")
	root := testenv.RepoRoot(t)
	dir := t.TempDir()
	pkgrun := filepath.Join(dir, "pkgrun")
	build := exec.Command("go", "build", "-o", pkgrun, "./cmd/pkgrun")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/pkgrun: %v\n%s", err, out)
	}
	tree := filepath.Join(dir, "tree")
	if err := os.CopyFS(tree, os.DirFS(filepath.Join(root, "examples", "tree"))); err != nil {
		t.Fatal(err)
	}
	const loc = "textproc/exwords"
	show := exec.Command(mk, "show-var", "VARNAME=PKGNAME")
	show.Dir = filepath.Join(tree, loc)
	out, err := show.Output()
	if err != nil {
		t.Fatalf("bmake show-var in %s: %v", loc, err)
	}
	pkgname := strings.TrimSpace(string(out))

	s3 := storetest.StartS3(t)
	ssh := storetest.StartSSHD(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
	for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "SSH_AUTH_SOCK"} {
		t.Setenv(k, "")
	}
	s3URL := "s3://" + s3.Bucket + "/e2e"
	tests := []struct {
		name, url string
		flags     []string
		opts      storeopen.Options
	}{
		{name: "s3", url: s3URL, flags: []string{"--s3-endpoint", s3.Endpoint, "--s3-region", s3.Region},
			opts: storeopen.Options{StoreAccess: job.StoreAccess{S3Endpoint: s3.Endpoint, S3Region: s3.Region}}},
		{name: "sftp", url: ssh.URL("e2e"), flags: []string{"--ssh-identity", ssh.IdentityFile, "--known-hosts", ssh.KnownHosts, "--connect-timeout", "20s"},
			opts: storeopen.Options{StoreAccess: job.StoreAccess{SSHIdentity: ssh.IdentityFile, KnownHosts: ssh.KnownHosts}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "bulk.db")
			if err := schedtest.WriteDB(context.Background(), db, []schedtest.Pkg{{Name: pkgname, Path: loc}}); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"run", "--db", db, "-j", "1", "--pkgrun", pkgrun, "--pkgsrc", tree, "--make", mk,
				"--work-root", t.TempDir(), "--max-time", "5m", "--store", tt.url, "--json"}, tt.flags...)
			code, stdout, errs := runSched(t, args...)
			if code != 0 || !strings.Contains(stdout, `"done": 1`) {
				t.Fatalf("exit %d\n%s\n%s", code, stdout, errs)
			}
			ctx := context.Background()
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

// TestReportStore: pkgsched report finds the logs by listing the store.
// A store that cannot be reached, a file store whose directory is not
// there, or one holding none of the logs pkgrun stored must stop the
// report (exit 2, naming the store) instead of dropping the links
// silently; logs missing for some packages only give a warning.
func TestReportStore(t *testing.T) {
	dir := t.TempDir()
	pkgrun := filepath.Join(dir, "pkgrun")
	script := `#!/bin/sh
name=$(sed -n 's/^PKGNAME=//p')
case $name in
ok-*) printf '{"version":1,"pkgname":"%s","pkgpath":"test/ok","status":"done"}\n' "$name"; exit 0 ;;
esac
printf '{"version":1,"pkgname":"%s","pkgpath":"test/x","status":"failed","failed_phase":"build","log_dir":"bulklog/%s/","phases":[{"name":"build","ok":false,"log":"bulklog/%s/build.log"}]}\n' "$name" "$name" "$name"
exit 1
`
	if err := os.WriteFile(pkgrun, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "bulk.db")
	if err := schedtest.WriteDB(context.Background(), db, []schedtest.Pkg{{Name: "a-1.0"}, {Name: "b-1.0"}, {Name: "ok-1.0"}}); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runSched(t, "run", "--db", db, "-j", "1", "--pkgrun", pkgrun, "--work-root", t.TempDir()); code != 1 {
		t.Fatalf("run: exit %d, want 1\n%s\n%s", code, out, errs)
	}
	store := func(logs ...string) string {
		s := t.TempDir()
		for _, l := range logs {
			p := filepath.Join(s, "bulklog", l, "build.log")
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte("log\n"), 0o644)
		}
		return "file://" + s
	}
	missing := "file://" + filepath.Join(dir, "not-mounted")
	tests := []struct {
		name    string
		args    []string
		code    int
		stderr  []string
		links   []string // logs report.html links to
		nolinks []string
	}{
		{name: "all logs", args: []string{"--store", store("a-1.0", "b-1.0")}, links: []string{"a-1.0/build.log", "b-1.0/build.log"}},
		{name: "some logs", args: []string{"--store", store("a-1.0")},
			stderr: []string{"warning", "lacks the logs pkgrun stored for 1 of 2 packages (b-1.0)"},
			links:  []string{"a-1.0/build.log"}, nolinks: []string{"b-1.0/build.log"}},
		{name: "wrong store", args: []string{"--store", store()}, code: 2,
			stderr: []string{"holds none of the logs pkgrun stored for 2 packages (a-1.0, b-1.0)", "no report written"}},
		{name: "missing directory", args: []string{"--store", missing}, code: 2,
			stderr: []string{missing, "not a directory"}},
		{name: "unreachable", args: []string{"--store", "s3://bucket/p", "--s3-endpoint", "http://127.0.0.1:1"}, code: 2,
			stderr: []string{"s3://bucket/p", "connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("AWS_ACCESS_KEY_ID", "k")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
			out := filepath.Join(t.TempDir(), "meta")
			args := append([]string{"report", "--db", db, "-o", out}, tt.args...)
			code, stdout, errs := runSched(t, args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tt.code, stdout, errs)
			}
			for _, w := range tt.stderr {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q lacks %q", errs, w)
				}
			}
			html, err := os.ReadFile(filepath.Join(out, "report.html"))
			if tt.code != 0 {
				if err == nil {
					t.Errorf("report.html written although the report failed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range tt.links {
				if !strings.Contains(string(html), l) {
					t.Errorf("report.html lacks a link to %s", l)
				}
			}
			for _, l := range tt.nolinks {
				if strings.Contains(string(html), l) {
					t.Errorf("report.html links to %s", l)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "not-mounted")); err == nil {
		t.Errorf("the report made the missing store directory")
	}
}
