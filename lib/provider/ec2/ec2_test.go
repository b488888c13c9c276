package ec2_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/imds/imdstest"
	"github.com/pkgbulk/pkgbulk/lib/provider"
	"github.com/pkgbulk/pkgbulk/lib/provider/ec2"
	"github.com/pkgbulk/pkgbulk/lib/provider/ec2/ec2test"
	"github.com/pkgbulk/pkgbulk/lib/provider/providertest"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu/qemutest"
	"github.com/pkgbulk/pkgbulk/lib/vmimage"
	"github.com/pkgbulk/pkgbulk/lib/vmimage/vmimagetest"
)

func TestUserData(t *testing.T) {
	w := provider.Worker{Name: "b1", Token: "pkgbulk_tok"}
	cfg := provider.WorkerConfig{ServerURL: "https://m:8443", Fingerprint: "sha256:ab", Labels: map[string]string{"capacity": "spot", "a": "b"}}
	ud, err := ec2.UserData(w, cfg, "http://169.254.169.254")
	if err != nil {
		t.Fatal(err)
	}
	want := "server=https://m:8443\nname=b1\npin=sha256:ab\nlabel=a=b\nlabel=capacity=spot\nimds=http://169.254.169.254\ntoken=pkgbulk_tok\n"
	if string(ud) != want {
		t.Fatalf("user data\n%s\nwant\n%s", ud, want)
	}
	kv, err := ec2.ParseUserData(ud)
	if err != nil || len(kv) != 7 || kv[3] != [2]string{"label", "a=b"} {
		t.Fatalf("parse: %v %v", kv, err)
	}
	if _, err := ec2.UserData(provider.Worker{Name: "b\nserver=evil", Token: "t"}, cfg, ""); err == nil {
		t.Error("a name with a line break was accepted")
	}
	for _, bad := range []string{"nokey\n", "=v\n", "shell=rm -rf /\n"} {
		if _, err := ec2.ParseUserData([]byte(bad)); err == nil {
			t.Errorf("ParseUserData(%q) accepted", bad)
		}
	}
}

func FuzzParseUserData(f *testing.F) {
	f.Add([]byte("server=https://m:1\nname=x\ntoken=t\n"))
	f.Add([]byte("label=a=b\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		kv, err := ec2.ParseUserData(b)
		if err != nil {
			return
		}
		for _, e := range kv {
			if e[0] == "" || strings.Contains(e[1], "\n") {
				t.Fatalf("%q parsed to %q", b, kv)
			}
		}
	})
}

// TestEC2EndToEnd drives the EC2 provider through the real AWS SDK
// against ec2test, whose RunInstances boots a qemu VM the EC2 way: the
// AMI's UEFI disk under OVMF, its user data read from the instance's
// metadata service at 169.254.169.254.
// The master builds one package (misc/diamond-a). A spot instance joins
// the master's pull server and takes its lease; a
// spot interruption notice from the real amazon-ec2-metadata-mock makes
// its worker release the lease and power the machine off (the instance
// terminates and leaves List); an on-demand instance (which watches no
// metadata service) then finishes the build, whose statuses and packages
// must be a local build's. Stop terminates what is left (unknown ids are
// no error) and List is empty at the end.
func TestEC2EndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs and builds part of the example tree twice")
	}
	vmimagetest.Require(t)
	imdstest.Find(t)
	img := vmimagetest.Disk(t, "worker", vmimage.Spec{})
	m := qemutest.NewMaster(t, []string{"misc/diamond-a"})
	codeL, outL, storeL := m.LocalBuild()

	mockPort := qemutest.FreePort(t)
	srv, err := ec2test.New(qemu.Config{Dir: filepath.Join(m.X.Dir, "vms"), Image: img, MemoryMB: 1024,
		Firmware: vmimagetest.OVMF, IMDS: "127.0.0.1:" + strconv.Itoa(mockPort)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	p, err := ec2.New(ctx, ec2.Config{Region: ec2test.Region, Endpoint: srv.URL, AccessKey: ec2test.AccessKey,
		SecretKey: ec2test.SecretKey, ImageID: "ami-0pkgbulk", InstanceType: "t3.medium"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "ec2:"+ec2test.Region {
		t.Errorf("Name %q", p.Name())
	}
	console := func(id string) string { return srv.VMs().SerialLog(srv.VM(id)) }
	m.Start("", 30*time.Second)
	tags := map[string]string{provider.TagRun: m.DB}
	wcfg := provider.WorkerConfig{ServerURL: m.URL(), Fingerprint: m.FP, Labels: map[string]string{"capacity": "spot"}}

	spot, err := p.Start(ctx, provider.StartRequest{Workers: []provider.Worker{{Name: "spot1", Token: m.Token("spot1")}},
		Config: wcfg, Spot: true, Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	ids := provider.IDs(spot)
	defer func() { p.Stop(context.Background(), ids) }()
	if !strings.HasPrefix(spot[0].ID, "i-") || !spot[0].Spot || spot[0].Name != "spot1" || spot[0].Tags[provider.TagRun] != m.DB {
		t.Fatalf("spot instance %+v", spot[0])
	}
	if err := qemutest.WaitConsole(ctx, console(spot[0].ID), qemutest.LeaseRE); err != nil {
		t.Fatal(err)
	}
	ls, err := p.List(ctx, tags)
	if err != nil || len(ls) != 1 || ls[0].ID != spot[0].ID || ls[0].State != provider.Running {
		t.Fatalf("List: %+v %v", ls, err)
	}
	if other, err := p.List(ctx, map[string]string{provider.TagRun: "/else.db"}); err != nil || len(other) != 0 {
		t.Errorf("List of another run: %+v %v", other, err)
	}

	// The spot notice: the worker leaves, its machine powers off, the
	// instance is terminated.
	noticeAt := time.Now()
	imdstest.StartOn(t, mockPort, "spot", "--action", "terminate")
	if err := qemutest.WaitConsole(ctx, console(spot[0].ID), regexp.MustCompile(`spot interruption notice`)); err != nil {
		t.Fatal(err)
	}
	for {
		ls, err := p.List(ctx, tags)
		if err != nil {
			t.Fatal(err)
		}
		if len(ls) == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the preempted instance is still listed: %+v\n%s", ls, readFile(console(spot[0].ID)))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("spot notice to instance gone: %.1fs", time.Since(noticeAt).Seconds())
	sc := readFile(console(spot[0].ID))
	if !strings.Contains(sc, "preempted") || !strings.Contains(sc, "exited with status 0") {
		t.Errorf("the spot worker did not leave as preempted:\n%s", sc)
	}
	for _, want := range []string{"BdsDxe: starting", "user data from http://169.254.169.254", "--spot-imds http://169.254.169.254"} {
		if !strings.Contains(sc, want) {
			t.Errorf("the spot instance's console lacks %q:\n%s", want, sc)
		}
	}

	od, err := p.Start(ctx, provider.StartRequest{Workers: []provider.Worker{{Name: "od1", Token: m.Token("od1")}},
		Config: provider.WorkerConfig{ServerURL: m.URL(), Fingerprint: m.FP}, Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, provider.IDs(od)...)
	if od[0].Spot {
		t.Errorf("the on-demand instance is spot: %+v", od[0])
	}
	codeV := m.Wait(ctx)
	if codeV < 0 {
		t.Fatalf("the run did not end; pkgsched:\n%s\nod1:\n%s", m.Out, readFile(console(od[0].ID)))
	}
	if codeV != codeL {
		t.Errorf("EC2 run: exit %d, local %d\nlocal:\n%s\nEC2:\n%s", codeV, codeL, outL, m.Out)
	}
	m.Compare(t, storeL, func() {
		t.Logf("spot1:\n%s\nod1:\n%s", sc, readFile(console(od[0].ID)))
	})
	// The on-demand instance watches nothing (its user data says imds=)
	// and has hidden the metadata service from its builds.
	if oc := readFile(console(od[0].ID)); strings.Contains(oc, "--spot-imds") || strings.Contains(oc, "could not hide") ||
		!strings.Contains(oc, "registered as pull:od1") {
		t.Errorf("od1's console:\n%s", oc)
	}
	// The job the spot worker released was built again by od1, never
	// twice at once.
	for pkg, w := range m.CheckEvents(t) {
		if !strings.HasSuffix(w, "od1") {
			t.Errorf("%s was built at last by %q, not by od1", pkg, w)
		}
	}

	if err := p.Stop(ctx, append(ids, "i-0000000000000000", "vm-x")); err != nil {
		t.Fatal(err)
	}
	if ls, err := p.List(ctx, tags); err != nil || len(ls) != 0 {
		t.Errorf("instances left after Stop: %+v %v", ls, err)
	}
	if vms, _ := srv.VMs().List(ctx, nil); len(vms) != 0 {
		t.Errorf("VMs left after Stop: %+v", vms)
	}
	if srv.Calls("RunInstances") != 2 || srv.Calls("TerminateInstances") == 0 || srv.Calls("DescribeInstances") == 0 {
		t.Errorf("calls: RunInstances %d, TerminateInstances %d, DescribeInstances %d", srv.Calls("RunInstances"), srv.Calls("TerminateInstances"), srv.Calls("DescribeInstances"))
	}
}

func readFile(f string) string {
	b, _ := os.ReadFile(f)
	return string(b)
}

// TestConformance runs the provider suite on ec2test: instances whose
// VMs register with a real pull server.
func TestConformance(t *testing.T) {
	img := vmimagetest.Image(t, "worker", vmimage.Spec{})
	dir := t.TempDir()
	px := qemutest.PullServer(t, dir)
	srv, err := ec2test.New(qemu.Config{Dir: filepath.Join(dir, "vms"), Image: img, MemoryMB: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	env := providertest.PullEnv(px)
	env.New = func(t *testing.T) provider.Provider {
		p, err := ec2.New(context.Background(), ec2.Config{Region: ec2test.Region, Endpoint: srv.URL,
			AccessKey: ec2test.AccessKey, SecretKey: ec2test.SecretKey, ImageID: "ami-0pkgbulk"})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	env.Spot = true
	providertest.Run(t, env)
}
