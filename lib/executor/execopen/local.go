package execopen

import (
	"fmt"
	"math"
	"net/url"
	"runtime"
	"strconv"
	"strings"
)

// Local is what a local executor spec says.
type Local struct {
	Slots         int     // parallel jobs (default: one per CPU)
	Cores         int     // the machine's cores for the core policy (0: local's default)
	Oversubscribe float64 // the factor for this executor (default: the run's)
}

// ParseLocal parses local, local:N and either with ?cores=C and
// &oversubscribe=F. over is the run's oversubscription factor, used when
// the spec does not set one.
func ParseLocal(spec string, over float64) (Local, error) {
	l := Local{Slots: runtime.NumCPU(), Oversubscribe: over}
	base, query, _ := strings.Cut(spec, "?")
	rest, ok := strings.CutPrefix(base, "local")
	if !ok || (rest != "" && !strings.HasPrefix(rest, ":")) {
		return l, fmt.Errorf("executor %s: want local or local:N[?cores=C&oversubscribe=F]", spec)
	}
	if rest = strings.TrimPrefix(rest, ":"); rest != "" || strings.HasPrefix(base, "local:") {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 {
			return l, fmt.Errorf("executor %s: want local or local:N with N at least 1", spec)
		}
		l.Slots = n
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return l, fmt.Errorf("executor %s: %w", spec, err)
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "cores":
			if l.Cores, err = strconv.Atoi(v); err != nil || l.Cores < 1 {
				return l, fmt.Errorf("executor %s: cores=%q: want a number of at least 1", spec, v)
			}
		case "oversubscribe":
			if l.Oversubscribe, err = strconv.ParseFloat(v, 64); err != nil || !(l.Oversubscribe >= 1) || math.IsInf(l.Oversubscribe, 0) {
				return l, fmt.Errorf("executor %s: oversubscribe=%q: want a factor of at least 1 (1.5: 50%% more jobs' MAKE_JOBS than cores)", spec, v)
			}
		default:
			return l, fmt.Errorf("executor %s: unknown setting %q (want cores, oversubscribe)", spec, k)
		}
	}
	return l, nil
}
