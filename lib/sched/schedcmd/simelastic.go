package schedcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/autoscale"
	"github.com/pkgbulk/pkgbulk/lib/cli"
	"github.com/pkgbulk/pkgbulk/lib/sched"
)

// ElasticSimFlags are pkgsched simulate's flags for elastic builders: the
// autoscaler's policy (lib/autoscale), as the elastic executor of
// pkgsched run applies it, with -W as the most builders.
type ElasticSimFlags struct {
	Elastic      bool          `help:"Simulate elastic builders: started on demand by the autoscaler, each -W value as the most builders, against a fixed pool of that many; prints makespan, builder-hours and idle share."`
	Min          int           `placeholder:"N" help:"Builders kept running even when idle (with --elastic)."`
	Boot         time.Duration `default:"60s" placeholder:"D" help:"Time from starting a builder to its first job (with --elastic)."`
	Idle         time.Duration `placeholder:"D" help:"Stop a builder idle this long (with --elastic; default: --boot, at least 10s)."`
	Budget       float64       `placeholder:"H" help:"Builder-hours to spend at most; then no builder starts and no job is handed out (with --elastic; 0: none)."`
	SpotLoss     float64       `placeholder:"R" help:"Use spot builders, taken back R times per builder-hour on average (with --elastic; 0: on-demand builders only)."`
	PreemptLimit int           `default:"2" placeholder:"N" help:"A job lost N times on spot builders goes to an on-demand builder (with --spot-loss)."`
	MinBill      time.Duration `default:"60s" placeholder:"D" help:"Least builder time billed per machine started, however early it stops (with --elastic; EC2 bills 60s at least; 0: from start to stop)."`
}

func (f ElasticSimFlags) policy(maxBuilders int) (autoscale.Policy, error) {
	if f.Budget < 0 || f.SpotLoss < 0 || f.Boot < 0 || f.Idle < 0 || f.MinBill < 0 {
		return autoscale.Policy{}, fmt.Errorf("simulate: negative --budget, --spot-loss, --boot, --idle or --min-bill")
	}
	p := autoscale.Policy{Min: f.Min, Max: maxBuilders, Boot: f.Boot, Idle: f.Idle,
		Budget: time.Duration(f.Budget * float64(time.Hour)), Spot: f.SpotLoss > 0, PreemptLimit: f.PreemptLimit}
	if err := p.Check(); err != nil {
		return p, fmt.Errorf("simulate: %w", err)
	}
	return p, nil
}

func (f ElasticSimFlags) run(ctx context.Context, g *cli.Globals, gr *sched.Graph, durs []int64, source string, workers []int, asJSON bool) error {
	var results []*sched.ElasticSimResult
	for _, w := range workers {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := f.policy(w)
		if err != nil {
			return err
		}
		r, err := sched.SimulateElastic(gr, sched.ElasticSimOptions{Policy: p, Dur: durs, SpotLoss: f.SpotLoss, Seed: 1, MinBill: f.MinBill})
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if asJSON {
		b, err := json.MarshalIndent(map[string]any{"durations": source, "elastic": results}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(g.Stdout, "%s\n", b)
		return err
	}
	hours := func(ms int64) string { return fmt.Sprintf("%.1f", float64(ms)/3.6e6) }
	fmt.Fprintf(g.Stdout, "%d packages; durations: %s\n", gr.Len(), source)
	fmt.Fprintf(g.Stdout, "elastic builders: boot %s, idle timeout %s, min %d, billed at least %s a start", f.Boot, time.Duration(results[0].IdleMS)*time.Millisecond, f.Min, f.MinBill)
	if f.SpotLoss > 0 {
		fmt.Fprintf(g.Stdout, ", spot lost %g/builder-hour, on-demand after %d losses", f.SpotLoss, f.PreemptLimit)
	}
	if f.Budget > 0 {
		fmt.Fprintf(g.Stdout, ", budget %g builder-hours", f.Budget)
	}
	fmt.Fprintln(g.Stdout, "; against a fixed pool of max builders")
	tw := tabwriter.NewWriter(g.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "max\tbuilt\tleft\tmakespan\tfixed\tratio\tbuilder-h\tfixed\tsaved\tidle\tfixed idle\tboot\tstarted\tspot-h\tpreempted\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%.3f\t%s\t%s\t%s\t%.1f%%\t%.1f%%\t%.1f%%\t%d\t%s\t%d\t\n", r.Max, r.Jobs, r.Left,
			dur(r.MakespanMS), dur(r.FixedMakespanMS), r.MakespanRatio, hours(r.BilledMS), hours(r.FixedBilledMS), hours(r.SavedMS),
			100*r.IdleShare, 100*r.FixedIdleShare, 100*r.BootShare, r.Started, hours(r.SpotMS), r.Preempted)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if r.Left > 0 {
			fmt.Fprintf(g.Stdout, "max %d: the budget ran out with %d packages left\n", r.Max, r.Left)
		}
	}
	return nil
}
