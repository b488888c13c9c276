// Package provideropen opens builder providers by kind, one case each:
//
//	process   `pkgrun worker` processes on this machine  lib/provider/process
//	          (pkgrun=PATH, arg=--pkgsrc=/usr/pkgsrc (repeatable))
//	qemu      qemu VMs (TCG) on this machine              lib/provider/qemu
//	          (image=DIR from scripts/vmimage.sh, or kernel=F&initrd=F;
//	          mem=MiB, cpus=N per VM; imds=HOST:PORT a metadata service
//	          the guests watch for spot notices)
//	ec2       EC2 instances (the AWS SDK's credentials)  lib/provider/ec2
//	          (ami=ID required; region=, type=t3.medium, subnet=,
//	          sg= (repeatable), spot-price=, imds=URL, endpoint=URL)
//
// The elastic executor's spec (elastic:KIND?max=4&...) gives the kind and
// the settings; the settings the autoscaler and the pull server do not
// take are the provider's. This is the one place where providers are
// wired: a new provider is one package and one case here.
package provideropen

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pkgbulk/pkgbulk/lib/executor/local"
	"github.com/pkgbulk/pkgbulk/lib/provider"
	"github.com/pkgbulk/pkgbulk/lib/provider/ec2"
	"github.com/pkgbulk/pkgbulk/lib/provider/process"
	"github.com/pkgbulk/pkgbulk/lib/provider/qemu"
	"github.com/pkgbulk/pkgbulk/lib/vmimage"
)

// Env is what every provider of a run shares.
type Env struct {
	// Dir is the run's own directory for provider state (builder
	// records, images, tokens), e.g. <database>.builders.
	Dir string
	// Pkgrun is the local pkgrun ("": beside this program, else PATH).
	Pkgrun string
	Log    io.Writer
}

// Open opens a provider of kind with its settings q (each key used is
// deleted from q; the caller reports the rest as unknown).
func Open(kind string, q url.Values, env Env) (provider.Provider, error) {
	take := func(k string) []string {
		v := q[k]
		delete(q, k)
		return v
	}
	last := func(k string) string {
		v := take(k)
		if len(v) == 0 {
			return ""
		}
		return v[len(v)-1]
	}
	switch kind {
	case "process":
		cfg := process.Config{Dir: filepath.Join(env.Dir, "process"), Pkgrun: env.Pkgrun, Args: take("arg")}
		if p := last("pkgrun"); p != "" {
			cfg.Pkgrun = p
		}
		if cfg.Pkgrun == "" {
			p, err := local.FindPkgrun()
			if err != nil {
				return nil, fmt.Errorf("provider process: %w", err)
			}
			cfg.Pkgrun = p
		}
		return process.New(cfg)
	case "qemu":
		cfg := qemu.Config{Dir: filepath.Join(env.Dir, "qemu"), IMDS: last("imds")}
		if d := last("image"); d != "" {
			cfg.Image = vmimage.InDir(d)
		}
		if k := last("kernel"); k != "" {
			cfg.Image.Kernel = k
		}
		if i := last("initrd"); i != "" {
			cfg.Image.Initrd = i
		}
		for k, p := range map[string]*int{"mem": &cfg.MemoryMB, "cpus": &cfg.CPUs} {
			if v := last(k); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n <= 0 {
					return nil, fmt.Errorf("provider qemu: %s=%q is not a positive number", k, v)
				}
				*p = n
			}
		}
		return qemu.New(cfg)
	case "ec2":
		return ec2.New(context.Background(), ec2.Config{Region: last("region"), Endpoint: last("endpoint"),
			ImageID: last("ami"), InstanceType: last("type"), SubnetID: last("subnet"), SecurityGroupIDs: take("sg"),
			MaxSpotPrice: last("spot-price"), IMDS: last("imds")})
	}
	return nil, fmt.Errorf("provider %q: unknown kind (want process, qemu or ec2)", kind)
}

// Unknown is an error naming the settings left in q, or nil.
func Unknown(spec string, q url.Values) error {
	if len(q) == 0 {
		return nil
	}
	var keys []string
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return fmt.Errorf("executor %s: unknown setting %s", spec, strings.Join(keys, ", "))
}
