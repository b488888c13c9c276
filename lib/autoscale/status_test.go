package autoscale

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/db"
)

func TestStatusWrite(t *testing.T) {
	now := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	pol := Policy{Max: 8, Min: 1, Spot: true, Budget: 10 * time.Hour}
	for _, c := range []struct {
		name string
		st   *Status
		want string
	}{
		{"none", nil, ""},
		{"running", func() *Status {
			s := NewStatus("ec2", pol, Stats{Live: 3, Stopping: 1, Started: 5, Billed: 90 * time.Minute, Boot: 72300 * time.Millisecond, Joins: 4}, now.Add(-3*time.Second))
			return &s
		}(), "elastic (ec2, spot): 3 machines billed now (1 stopping), max 8, min 1; 5 started in all\n" +
			"  1.50 builder-hours billed of a 10.00 budget; boot estimate 1m12.3s from 4 joins (as of 3s ago)\n"},
		{"stopped, no budget", func() *Status {
			s := NewStatus("qemu", Policy{Max: 2}, Stats{Started: 6, Billed: 36 * time.Second, Boot: 15 * time.Second}, now.Add(-time.Minute))
			s.Stopped = true
			return &s
		}(), "elastic (qemu, on-demand): 0 machines billed now (0 stopping), max 2, min 0; 6 started in all\n" +
			"  0.01 builder-hours billed; boot estimate 15s from 0 joins (the run stopped its machines 1m0s ago)\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := c.st.Write(&b, now); err != nil {
				t.Fatal(err)
			}
			if b.String() != c.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), c.want)
			}
		})
	}
}

// TestReadStatus: no row is no status; a row reads back what was
// written; a damaged row is an error naming the key.
func TestReadStatus(t *testing.T) {
	ctx := context.Background()
	d, err := db.Create(ctx, filepath.Join(t.TempDir(), "bulk.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if s, err := ReadStatus(ctx, d); s != nil || err != nil {
		t.Fatalf("empty database: %v, %v", s, err)
	}
	want := NewStatus("process", Policy{Max: 2}, Stats{Live: 1, Started: 2, Billed: time.Second}, time.UnixMilli(1000))
	b, _ := json.Marshal(want)
	d.Exec(`INSERT INTO meta (key, value) VALUES (?, ?)`, MetaStatus, string(b))
	if s, err := ReadStatus(ctx, d); err != nil || s == nil || *s != want {
		t.Errorf("read %+v, %v; want %+v", s, err, want)
	}
	d.Exec(`UPDATE meta SET value = '{' WHERE key = ?`, MetaStatus)
	if _, err := ReadStatus(ctx, d); err == nil {
		t.Error("a damaged status read without error")
	}
}
