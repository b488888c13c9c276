package execopen

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/executor/noway"
	"github.com/pkgbulk/pkgbulk/lib/executor/slurmexec"
	"github.com/pkgbulk/pkgbulk/lib/executor/sshexec"
)

func TestParseHost(t *testing.T) {
	tests := []struct {
		spec string
		want sshexec.Host
		err  string
	}{
		{spec: "ssh://bulk@host1", want: sshexec.Host{User: "bulk", Host: "host1", Slots: 1}},
		{spec: "ssh://bulk@host1:2222?slots=4&pkgrun=/usr/pkg/bin/pkgrun&pkgsrc=/p&workroot=/w&label=a&label=b&name=h1",
			want: sshexec.Host{User: "bulk", Host: "host1", Port: 2222, Slots: 4, Pkgrun: "/usr/pkg/bin/pkgrun", Pkgsrc: "/p", WorkRoot: "/w", Labels: []string{"a", "b"}, Name: "h1"}},
		{spec: "ssh://[fe80::1]:22?slots=2", err: "no user"},
		{spec: "ssh://bulk@host1?slots=0", err: "slots"},
		{spec: "ssh://bulk@host1?deadline=5s", want: sshexec.Host{User: "bulk", Host: "host1", Slots: 1, Deadline: 5 * time.Second}},
		{spec: "ssh://bulk@host1?deadline=soon", err: "deadline"},
		{spec: "ssh://bulk@host1?slot=2", err: "unknown setting"},
		{spec: "ssh://bulk:pw@host1", err: "no passwords"},
		{spec: "ssh://bulk@host1/dir", err: "no path"},
		{spec: "ssh://bulk@host1:x", err: "invalid port"}, {spec: "ssh://bulk@host1:99999", err: "bad port"},
		{spec: "ssh://bulk@host1?cores=8", want: sshexec.Host{User: "bulk", Host: "host1", Slots: 1, Cores: 8}},
		{spec: "ssh://bulk@host1?cores=0", err: "cores="},
		{spec: "ssh://bulk@host1?cores=4&oversubscribe=1.5", want: sshexec.Host{User: "bulk", Host: "host1", Slots: 1, Cores: 4, Oversubscribe: 1.5}},
		{spec: "ssh://bulk@host1?oversubscribe=0.5", err: "oversubscribe="},
		{spec: "ssh://bulk@host1?oversubscribe=NaN", err: "oversubscribe="},
		{spec: "ssh://bulk@host1?oversubscribe=Inf", err: "oversubscribe="},
		{spec: "ssh://bulk@host1?cores=many", err: "cores="},
		{spec: "ssh://bulk@host1?never=www/firefox*&never=firefox-[0-9]*&never=gtk+3-[0-9]*&never=rust>=1.80",
			want: sshexec.Host{User: "bulk", Host: "host1", Slots: 1, Never: mustNoway(t, "www/firefox*", "firefox-[0-9]*", "gtk+3-[0-9]*", "rust>=1.80")}},
		{spec: "ssh://bulk@host1?never=www/[firefox", err: `never="www/[firefox": bad pkgpath glob`},
		{spec: "ssh://bulk@host1?never={firefox-[0-9]*", err: "bad package pattern"},
		{spec: "ssh://bulk@host1?never=", err: "never=\"\""},
		{spec: "ssh://bulk@host1?never=%zz", err: "invalid URL escape"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			h, err := ParseHost(tt.spec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(h.Never.Entries(), tt.want.Never.Entries()) {
				t.Fatalf("never: got %q, want %q", h.Never.Entries(), tt.want.Never.Entries())
			}
			h.Never, tt.want.Never = noway.List{}, noway.List{}
			if !reflect.DeepEqual(h, tt.want) {
				t.Fatalf("got %+v\nwant %+v", h, tt.want)
			}
		})
	}
}

func TestParseHostsFile(t *testing.T) {
	hosts, err := ParseHostsFile("hosts", []byte("# builders\n\nssh://root@a?slots=2\n  ssh://root@b:2200\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 2 || hosts[0].Slots != 2 || hosts[1].Port != 2200 {
		t.Fatalf("got %+v", hosts)
	}
	if _, err := ParseHostsFile("hosts", []byte("ssh://root@a\nbogus\n")); err == nil || !strings.Contains(err.Error(), "hosts:2:") {
		t.Fatalf("bad line: error %v, want one naming hosts:2", err)
	}
	if _, err := ParseHostsFile("hosts", []byte("# none\n")); err == nil {
		t.Fatal("empty hosts file accepted")
	}
	hosts, err = ParseHostsFile("hosts", []byte("ssh://root@a?never=www/firefox*&never=libreoffice\nssh://root@b?cores=16\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a := hosts[0]; a.Never.Accepts("www/firefox", "firefox-1") || a.Never.Accepts("misc/libreoffice", "libreoffice-7.6") || !a.Never.Accepts("devel/foo", "foo-1") {
		t.Errorf("host a's no-way list: %q", a.Never.Entries())
	}
	if hosts[1].Cores != 16 || !hosts[1].Never.Empty() {
		t.Errorf("host b: %+v", hosts[1])
	}
	_, err = ParseHostsFile("/etc/pkgbulk/hosts", []byte("ssh://root@a\n# big\nssh://root@b?never=www/firefox*&never=a/b/c\n"))
	if err == nil || !strings.Contains(err.Error(), "/etc/pkgbulk/hosts:3:") || !strings.Contains(err.Error(), `never="a/b/c"`) {
		t.Fatalf("bad pattern: error %v, want one naming /etc/pkgbulk/hosts:3 and the pattern", err)
	}
}

func mustNoway(t *testing.T, entries ...string) noway.List {
	l, err := noway.Parse(entries)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func FuzzParseHost(f *testing.F) {
	for _, s := range []string{"ssh://bulk@host1?slots=4&cores=8&never=www/firefox*", "ssh://a@b?never=x+y", "ssh://a@[::1]:22?never=%5B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		h, err := ParseHost(spec)
		if err != nil {
			return
		}
		if h.Slots < 1 || h.Cores < 0 || h.User == "" || h.Host == "" || h.Oversubscribe < 0 || h.Oversubscribe > 0 && h.Oversubscribe < 1 {
			t.Errorf("%q: accepted %+v", spec, h)
		}
	})
}

func TestOpenSpecs(t *testing.T) {
	env := Env{Pkgrun: "/bin/true"}
	for _, bad := range []string{"local:0", "local:x", "nfs://x", "ssh:", "ssh:/nonexistent/hosts"} {
		if e, err := Open(context.Background(), []string{bad}, env); err == nil {
			e.Close()
			t.Errorf("%s: accepted", bad)
		}
	}
	e, err := Open(context.Background(), []string{"local:2", "local:3"}, env)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if n := e.Capacity(); n != 5 {
		t.Fatalf("capacity %d, want 5", n)
	}
}

func TestParseSlurm(t *testing.T) {
	c, err := slurmexec.ParseSpec("slurm://?partition=debug&slots=4&pkgrun=/usr/pkg/bin/pkgrun&cores=2&name=hpc&conf=/etc/s.conf")
	if err != nil {
		t.Fatal(err)
	}
	if c.Partition != "debug" || c.Slots != 4 || c.Cores != 2 || c.Pkgrun != "/usr/pkg/bin/pkgrun" || c.Name != "hpc" || c.Conf != "/etc/s.conf" {
		t.Errorf("got %+v", c)
	}
	if c, err := slurmexec.ParseSpec("slurm://"); err != nil || c.Slots != 1 || c.Cores != 1 || c.Partition != "" {
		t.Errorf("slurm://: %+v, %v", c, err)
	}
	for spec, want := range map[string]string{
		"slurm://?slots=0":    "slots",
		"slurm://?cores=x":    "cores",
		"slurm://?part=debug": "unknown setting",
		"slurm://head/x":      "no host",
		"slurm:debug":         "want slurm://",
	} {
		if _, err := slurmexec.ParseSpec(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one saying %q", spec, err, want)
		}
	}
	if e, err := Open(context.Background(), []string{"slurm://?slots=0"}, Env{}); err == nil {
		e.Close()
		t.Error("slurm://?slots=0 accepted")
	}
}
