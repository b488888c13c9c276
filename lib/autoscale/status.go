package autoscale

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// MetaStatus is the meta key under which a running elastic executor keeps
// its Status (JSON), for pkgsched status and anyone with sqlite3.
const MetaStatus = "elastic.status"

// Status is what an elastic run's machines cost so far and what the
// autoscaler knows: written every few seconds while pkgsched runs, and
// once more when it stops its machines.
type Status struct {
	Provider  string `json:"provider"` // qemu, ec2, process
	Max       int    `json:"max"`
	Min       int    `json:"min"`
	Spot      bool   `json:"spot"`
	Live      int    `json:"live"`     // machines billed now (starting, running, stopping)
	Stopping  int    `json:"stopping"` // of those, stopped but not yet gone
	Started   int    `json:"started"`  // machines started by this run in all
	BilledMS  int64  `json:"billed_ms"`
	BudgetMS  int64  `json:"budget_ms"` // 0: none
	BootMS    int64  `json:"boot_ms"`   // the boot time estimate
	Joins     int    `json:"joins"`     // joins it was learnt from
	UpdatedAt int64  `json:"updated_at"`
	Stopped   bool   `json:"stopped"` // the run ended and stopped its machines
}

// NewStatus is the status of d's run now.
func NewStatus(provider string, p Policy, s Stats, now time.Time) Status {
	return Status{Provider: provider, Max: p.Max, Min: p.Min, Spot: p.Spot, Live: s.Live, Stopping: s.Stopping,
		Started: s.Started, BilledMS: s.Billed.Milliseconds(), BudgetMS: p.Budget.Milliseconds(),
		BootMS: s.Boot.Milliseconds(), Joins: s.Joins, UpdatedAt: now.UnixMilli()}
}

// ReadStatus reads the last elastic run's status from the database's
// meta; nil when no elastic run wrote one.
func ReadStatus(ctx context.Context, d *sql.DB) (*Status, error) {
	var v string
	err := d.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, MetaStatus).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read meta %s: %w", MetaStatus, err)
	}
	var s Status
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return nil, fmt.Errorf("meta %s: %w", MetaStatus, err)
	}
	return &s, nil
}

// Write prints s as pkgsched status shows it (nothing when s is nil).
func (s *Status) Write(w io.Writer, now time.Time) error {
	if s == nil {
		return nil
	}
	h := func(ms int64) string { return fmt.Sprintf("%.2f", float64(ms)/3.6e6) }
	kind := "on-demand"
	if s.Spot {
		kind = "spot"
	}
	_, err := fmt.Fprintf(w, "elastic (%s, %s): %d machines billed now (%d stopping), max %d, min %d; %d started in all\n",
		s.Provider, kind, s.Live, s.Stopping, s.Max, s.Min, s.Started)
	if err != nil {
		return err
	}
	budget := ""
	if s.BudgetMS > 0 {
		budget = " of a " + h(s.BudgetMS) + " budget"
	}
	age := now.Sub(time.UnixMilli(s.UpdatedAt)).Round(time.Second)
	state := fmt.Sprintf("as of %s ago", age)
	if s.Stopped {
		state = "the run stopped its machines " + age.String() + " ago"
	}
	_, err = fmt.Fprintf(w, "  %s builder-hours billed%s; boot estimate %s from %d joins (%s)\n",
		h(s.BilledMS), budget, (time.Duration(s.BootMS) * time.Millisecond).Round(100*time.Millisecond), s.Joins, state)
	return err
}
