package pull

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Status is what pkgsched status shows of the pull workers, read from the
// database (no secret in it).
type Status struct {
	URL         string         `json:"url,omitempty"`         // as the last pull server listened
	Fingerprint string         `json:"fingerprint,omitempty"` // its certificate's, for pkgrun worker --fingerprint
	Workers     []WorkerStatus `json:"workers"`
}

// WorkerStatus is one open session.
type WorkerStatus struct {
	Name      string            `json:"name"`
	Host      string            `json:"host"`
	Platform  string            `json:"platform"`
	Cores     int               `json:"cores"`
	Labels    map[string]string `json:"labels,omitempty"`
	Jobs      []string          `json:"jobs,omitempty"` // PKGNAMEs of its active leases
	Connected time.Time         `json:"connected"`
	LastSeen  time.Time         `json:"last_seen"` // last heartbeat (or poll, to within a few seconds)
}

// ReadStatus reads the pull workers of the database d: the sessions still
// open and their active leases. A database without pull tables (an older
// schema) has none.
func ReadStatus(ctx context.Context, d *sql.DB) (*Status, error) {
	st := &Status{Workers: []WorkerStatus{}}
	rows, err := d.QueryContext(ctx, `SELECT key, value FROM meta WHERE key IN ('pull.url', 'pull.fingerprint')`)
	if err != nil {
		return nil, fmt.Errorf("read pull status: %w", err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read pull status: %w", err)
		}
		if k == "pull.url" {
			st.URL = v
		} else {
			st.Fingerprint = v
		}
	}
	rows.Close()
	rows, err = d.QueryContext(ctx, `SELECT s.worker, s.info, s.created_at, s.last_seen, t.labels,
		(SELECT group_concat(pkgname, ' ') FROM pull_leases l WHERE l.session = s.hash AND l.state = 'active')
		FROM pull_sessions s JOIN pull_tokens t ON t.name = s.token
		WHERE s.ended_at IS NULL AND t.revoked_at IS NULL ORDER BY s.worker`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return st, nil
		}
		return nil, fmt.Errorf("read pull workers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var w WorkerStatus
		var info, labels string
		var jobs sql.NullString
		var created, seen int64
		if err := rows.Scan(&w.Name, &info, &created, &seen, &labels, &jobs); err != nil {
			return nil, fmt.Errorf("read pull workers: %w", err)
		}
		var req RegisterRequest
		json.Unmarshal([]byte(info), &req)
		w.Host, w.Platform, w.Cores = req.Host, req.Platform.String(), req.Cores
		w.Labels = map[string]string{}
		for k, v := range req.Labels {
			w.Labels[k] = v
		}
		tl, _ := ParseLabels(labels)
		for k, v := range tl {
			w.Labels[k] = v
		}
		if jobs.Valid && jobs.String != "" {
			w.Jobs = strings.Fields(jobs.String)
		}
		w.Connected, w.LastSeen = time.UnixMilli(created).UTC(), time.UnixMilli(seen).UTC()
		st.Workers = append(st.Workers, w)
	}
	return st, rows.Err()
}

// Write prints the pull workers for humans (nothing when there are none
// and no pull server ran).
func (st *Status) Write(w io.Writer, now time.Time) error {
	if st == nil || (len(st.Workers) == 0 && st.URL == "") {
		return nil
	}
	fmt.Fprintf(w, "pull workers: %d (server %s, certificate %s)\n", len(st.Workers), st.URL, st.Fingerprint)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, wk := range st.Workers {
		job := "idle"
		if len(wk.Jobs) > 0 {
			job = strings.Join(wk.Jobs, ",")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d cores\t%s\t%s\tlast seen %s ago\n", wk.Name, wk.Host, wk.Platform, wk.Cores,
			FormatLabels(wk.Labels), job, now.Sub(wk.LastSeen).Round(time.Second))
	}
	return tw.Flush()
}
