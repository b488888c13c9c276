package sched

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// DefaultHeartbeatEvery is how often a running scheduler records that it
// is alive (meta key pkgsched.heartbeat).
const DefaultHeartbeatEvery = 5 * time.Second

// StaleAfter is how old a heartbeat may be before readers say that no
// scheduler is running: a few missed beats, so that a busy disk is not
// taken for a dead scheduler.
const StaleAfter = 4 * DefaultHeartbeatEvery

// heartbeatKey is the meta key of the heartbeat.
const heartbeatKey = "pkgsched.heartbeat"

// Heartbeat is what a scheduler records about itself in meta
// (pkgsched.heartbeat, as JSON): the last time it was alive, its process
// and host, and whether it ended (a run that returned, as opposed to one
// killed with -9, which simply stops beating).
type Heartbeat struct {
	AtMS  int64  `json:"at"` // unix ms
	PID   int    `json:"pid"`
	Host  string `json:"host"`
	Ended bool   `json:"ended,omitempty"`
}

// Liveness is a reader's verdict on the heartbeat, for status and the
// status page.
type Liveness struct {
	Heartbeat
	Known  bool   `json:"known"`            // a heartbeat was recorded (pkgsched run of this version ran)
	Alive  bool   `json:"alive"`            // a scheduler beat less than StaleAfter ago and did not end
	AgeMS  int64  `json:"age_ms"`           // since the last beat
	Resume string `json:"resume,omitempty"` // how to resume when nobody is building
}

// writeHeartbeat records that this process is alive at t (or ended).
func writeHeartbeat(ctx context.Context, d *sql.DB, t time.Time, ended bool) error {
	host, _ := os.Hostname()
	b, err := json.Marshal(Heartbeat{AtMS: t.UnixMilli(), PID: os.Getpid(), Host: host, Ended: ended})
	if err != nil {
		return err
	}
	if _, err := d.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`, heartbeatKey, string(b)); err != nil {
		return fmt.Errorf("write scheduler heartbeat: %w", err)
	}
	return nil
}

// ReadLiveness reads the heartbeat and judges it at now.
func ReadLiveness(ctx context.Context, d *sql.DB, now time.Time) (*Liveness, error) {
	l := &Liveness{}
	var v string
	err := d.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, heartbeatKey).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read scheduler heartbeat: %w", err)
	}
	if err := json.Unmarshal([]byte(v), &l.Heartbeat); err != nil {
		return nil, fmt.Errorf("read scheduler heartbeat %q: %w", v, err)
	}
	l.Known = true
	l.AgeMS = max(now.UnixMilli()-l.AtMS, 0)
	l.Alive = !l.Ended && time.Duration(l.AgeMS)*time.Millisecond < StaleAfter
	if l.Alive && !processAlive(l.Host, l.PID) {
		// Killed on this host: no need to wait for the beats to stop.
		l.Alive = false
	}
	return l, nil
}

// Message says in one line whether a scheduler is running; "" when no
// heartbeat was ever recorded.
func (l *Liveness) Message() string {
	if !l.Known {
		return ""
	}
	at := time.UnixMilli(l.AtMS).UTC().Format(time.RFC3339)
	switch {
	case l.Alive:
		return fmt.Sprintf("scheduler running: pid %d on %s, last heartbeat %s ago", l.PID, l.Host, ago(l.AgeMS))
	case l.Ended:
		return fmt.Sprintf("no scheduler running since %s (pid %d on %s ended)", at, l.PID, l.Host)
	}
	return fmt.Sprintf("no scheduler running since %s (pid %d on %s is gone: killed, or its host is down)", at, l.PID, l.Host)
}

// processAlive reports whether pid may still run on host: false only
// when host is this machine and no process pid exists.
func processAlive(host string, pid int) bool {
	if me, err := os.Hostname(); err != nil || me != host || pid <= 0 {
		return true
	}
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func ago(ms int64) string {
	return (time.Duration(ms) * time.Millisecond).Round(time.Second).String()
}
