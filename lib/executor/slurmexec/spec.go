package slurmexec

import (
	"fmt"
	"net/url"
	"strconv"

	"github.com/pkgbulk/pkgbulk/lib/job"
)

// ParseSpec parses
// slurm://[?partition=P&slots=N&cores=C&pkgrun=PATH&name=NAME&conf=FILE]:
// slots (default 1) is how many jobs are in Slurm at once, cores the most
// CPUs one job may ask for (its MAKE_JOBS; default 1), conf a slurm.conf
// (SLURM_CONF).
func ParseSpec(spec string) (Config, error) {
	c := Config{Slots: 1, Cores: 1}
	u, err := url.Parse(spec)
	if err != nil {
		return c, fmt.Errorf("executor %s: %w", spec, err)
	}
	if u.Scheme != "slurm" || u.Opaque != "" {
		return c, fmt.Errorf("executor %s: want slurm://?partition=P&slots=N", spec)
	}
	if u.Host != "" || (u.Path != "" && u.Path != "/") {
		return c, fmt.Errorf("executor %s: no host or path (the cluster is slurm.conf's; use ?conf=FILE)", spec)
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "partition":
			c.Partition = v
		case "slots", "cores":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return c, fmt.Errorf("executor %s: %s=%q: want a number of at least 1", spec, k, v)
			}
			if k == "slots" {
				c.Slots = n
			} else {
				c.Cores = n
			}
		case "pkgrun":
			c.Pkgrun = v
		case "name":
			c.Name = v
		case "conf":
			c.Conf = v
		default:
			return c, fmt.Errorf("executor %s: unknown setting %q (want partition, slots, cores, pkgrun, name, conf)", spec, k)
		}
	}
	return c, nil
}

// Open opens the executor a spec names; pkgrun is the default for its
// pkgrun setting ("" : pkgrun on the nodes' PATH).
func Open(spec string, s job.Settings, tag, pkgrun string) (*Executor, error) {
	c, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if c.Pkgrun == "" {
		c.Pkgrun = pkgrun
	}
	c.Settings, c.Tag = s, tag
	return New(c)
}
