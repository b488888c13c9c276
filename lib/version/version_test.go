package version

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/job"
)

func TestWriteParse(t *testing.T) {
	var b bytes.Buffer
	if err := Current().Write(&b, true); err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got != Current() || got.Protocol != job.ProtocolVersion || got.Pkgbulk == "" {
		t.Errorf("round trip: %+v, want %+v", got, Current())
	}
	b.Reset()
	Current().Write(&b, false)
	if !strings.Contains(b.String(), "job protocol 1") {
		t.Errorf("text: %q", b.String())
	}
}

func TestRelease(t *testing.T) {
	old := Release
	defer func() { Release = old }()
	Release = "v9.9.9"
	if Pkgbulk() != "v9.9.9" || Current().Pkgbulk != "v9.9.9" {
		t.Errorf("Release set at link time not used: %s", Pkgbulk())
	}
}

func TestRemote(t *testing.T) {
	ok := `{"pkgbulk":"v1","protocol":` + itoa(job.ProtocolVersion) + `,"result":1}` + "\n"
	other := `{"pkgbulk":"v7","protocol":` + itoa(job.ProtocolVersion+1) + `,"result":1}`
	for _, tc := range []struct {
		name   string
		exit   int
		out    string
		stderr string
		want   string // "" : no error
	}{
		{"match", 0, ok, "", ""},
		{"missing", 127, "", "sh: 1: /opt/pkgrun: not found\n", "no pkgrun at /opt/pkgrun (stderr: sh: 1: /opt/pkgrun: not found)"},
		{"not executable", 126, "", "", "/opt/pkgrun is not executable"},
		{"old pkgrun", 2, "", "pkgrun: error: unexpected argument version", "failed with exit status 2"},
		{"garbage", 0, "pkgrun 1.0\n", "", "version --json: parse pkgrun version"},
		{"no protocol", 0, `{"pkgbulk":"v1"}`, "", "no job protocol version"},
		{"trailing", 0, ok + "x", "", "trailing data"},
		{"mismatch", 0, other, "", "speaks job protocol 2 (pkgbulk v7), this scheduler speaks 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Remote("ssh:h1", "/opt/pkgrun", tc.exit, []byte(tc.out), tc.stderr)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "ssh:h1") {
				t.Fatalf("error %v, want one naming ssh:h1 and saying %q", err, tc.want)
			}
			if !errors.Is(err, ErrIncompatible) {
				t.Errorf("%v does not wrap ErrIncompatible", err)
			}
			if !strings.Contains(err.Error(), Current().Pkgbulk) {
				t.Errorf("%v does not name this scheduler's release", err)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"pkgbulk":"v1","protocol":1,"result":1}`))
	f.Add([]byte(`{"protocol":0}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		i, err := Parse(b)
		if err == nil && i.Protocol < 1 {
			t.Errorf("accepted protocol %d", i.Protocol)
		}
	})
}
