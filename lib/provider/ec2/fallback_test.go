package ec2_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/provider"
	"github.com/pkgbulk/pkgbulk/lib/provider/ec2"
	"github.com/pkgbulk/pkgbulk/lib/provider/ec2/ec2test"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu/qemutest"
	"github.com/pkgbulk/pkgbulk/lib/vmimage"
	"github.com/pkgbulk/pkgbulk/lib/vmimage/vmimagetest"
)

func TestNoCapacity(t *testing.T) {
	for _, tt := range []struct {
		code string
		spot bool
		want bool
	}{
		{"InsufficientInstanceCapacity", true, true},
		{"InsufficientInstanceCapacity", false, true},
		{"InsufficientCapacity", false, true},
		{"InsufficientHostCapacity", false, true},
		{"InsufficientReservedInstanceCapacity", false, true},
		{"UnfulfillableCapacity", true, true},
		{"SpotMaxPriceTooLow", true, true},
		{"MaxSpotInstanceCountExceeded", true, true},
		{"SpotMaxPriceTooLow", false, false},
		{"InstanceLimitExceeded", false, false},
		{"VcpuLimitExceeded", true, false},
		{"InvalidParameterValue", true, false},
		{"AuthFailure", true, false},
	} {
		if got := ec2.NoCapacity(tt.code, tt.spot); got != tt.want {
			t.Errorf("NoCapacity(%q, spot %v) = %v, want %v", tt.code, tt.spot, got, tt.want)
		}
	}
}

// TestSpotFallback runs pkgsched with elastic:ec2?spot=true against
// ec2test, through the real AWS SDK, while the endpoint refuses every
// spot RunInstances with InsufficientInstanceCapacity (as EC2 does when
// a spot pool has no capacity): the provider's error is
// provider.ErrNoCapacity, the autoscaler says so in one line and starts
// on-demand builders instead (qemu VMs), and the run ends with a local
// build's statuses and packages, every package built on an on-demand
// builder, no spot instance started and none left running.
func TestSpotFallback(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs and builds part of the example tree twice")
	}
	vmimagetest.Require(t)
	img := vmimagetest.Image(t, "worker", vmimage.Spec{})
	m := qemutest.NewMaster(t, []string{"misc/diamond-a"})
	codeL, outL, storeL := m.LocalBuild()

	srv, err := ec2test.New(qemu.Config{Dir: filepath.Join(m.X.Dir, "vms"), Image: img, MemoryMB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.RefuseSpot(-1)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	// The provider's error, through the SDK (which retries the 500).
	p, err := ec2.New(ctx, ec2.Config{Region: ec2test.Region, Endpoint: srv.URL, AccessKey: ec2test.AccessKey,
		SecretKey: ec2test.SecretKey, ImageID: "ami-0pkgbulk"})
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{provider.TagRun: m.DB}
	got, err := p.Start(ctx, provider.StartRequest{Workers: []provider.Worker{{Name: "probe", Token: "pkgbulk_x"}},
		Config: provider.WorkerConfig{ServerURL: m.URL()}, Spot: true, Tags: tags})
	if len(got) != 0 || !errors.Is(err, provider.ErrNoCapacity) || !strings.Contains(err.Error(), "InsufficientInstanceCapacity") {
		t.Fatalf("spot Start with no capacity: %v, %v; want provider.ErrNoCapacity", got, err)
	}
	if srv.Refused() == 0 {
		t.Fatal("the endpoint refused nothing")
	}

	t.Setenv("AWS_ACCESS_KEY_ID", ec2test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", ec2test.SecretKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	spec := fmt.Sprintf("elastic:ec2?max=2&boot=15s&idle=5s&worth=0.01&spot=true&spot-retry=30m&ttl=20s&poll=2s&tick=500ms&list=1s"+
		"&listen=127.0.0.1:%d&region=%s&endpoint=%s&ami=ami-0pkgbulk", m.Port, ec2test.Region, srv.URL)
	start := time.Now()
	m.Start(spec, 0)
	codeE := m.Wait(ctx)
	if codeE < 0 {
		t.Fatalf("the elastic run did not end\n%s", m.Out)
	}
	out := m.Out.String()
	t.Logf("elastic run on ec2test with no spot capacity: exit %d in %v, %d spot requests refused, %d RunInstances",
		codeE, time.Since(start).Round(time.Second), srv.Refused(), srv.Calls("RunInstances"))
	if codeE != codeL {
		t.Errorf("elastic run: exit %d, local %d\nlocal:\n%s\nelastic:\n%s", codeE, codeL, outL, out)
	}
	m.Compare(t, storeL, func() {})
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "autoscale: ") {
			t.Log(l)
		}
	}
	if n := strings.Count(out, "autoscale: no spot capacity on ec2:"+ec2test.Region); n != 1 {
		t.Errorf("%d lines on the spot shortage; want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "starting 1 on-demand builders instead") && !strings.Contains(out, "starting 2 on-demand builders instead") {
		t.Errorf("no on-demand builders in place of spot:\n%s", out)
	}
	if strings.Contains(out, "spot builders on ec2") {
		t.Errorf("a spot builder started:\n%s", out)
	}
	for pkg, w := range m.CheckEvents(t) {
		if !strings.Contains(w, "-od") {
			t.Errorf("%s was built by %q, not an on-demand builder", pkg, w)
		}
	}
	if ls, err := p.List(ctx, tags); err != nil || len(ls) != 0 {
		t.Errorf("instances left after the run: %+v %v", ls, err)
	}
	if vms, _ := srv.VMs().List(ctx, nil); len(vms) != 0 {
		t.Errorf("VMs left after the run: %+v", vms)
	}
}
