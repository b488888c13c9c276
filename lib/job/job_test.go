package job

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestStoreAccessOverride(t *testing.T) {
	doc := &StoreAccess{S3Endpoint: "http://a:1", S3Region: "r1", SSHIdentity: "/k", ConnectTimeout: Duration(40 * time.Second)}
	tests := []struct {
		name string
		doc  *StoreAccess
		over StoreAccess
		want *StoreAccess
	}{
		{name: "nothing at all", want: nil},
		{name: "document only", doc: doc, want: doc},
		{name: "flags only", over: StoreAccess{KnownHosts: "/kh", S3AllowHTTP: true},
			want: &StoreAccess{KnownHosts: "/kh", S3AllowHTTP: true}},
		{name: "flags win", doc: doc, over: StoreAccess{S3Region: "r2", ConnectTimeout: Duration(5 * time.Second)},
			want: &StoreAccess{S3Endpoint: "http://a:1", S3Region: "r2", SSHIdentity: "/k", ConnectTimeout: Duration(5 * time.Second)}},
		{name: "empty document", doc: &StoreAccess{}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := *doc
			got := tt.doc.Override(tt.over)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if *doc != before {
				t.Errorf("Override changed its receiver: %+v", *doc)
			}
		})
	}
}

// TestSettingsJSON checks that store_access is additive: left out when
// unset, and a document without it still decodes.
func TestSettingsJSON(t *testing.T) {
	b, err := json.Marshal(Settings{Store: "s3://b/p"})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"store":"s3://b/p"}` {
		t.Errorf("marshal without store access: %s", b)
	}
	in := `{"store":"sftp://u@h/d","store_access":{"s3_endpoint":"http://h:9000","s3_region":"r","s3_allow_http":true,"ssh_identity":"/k","known_hosts":"/kh","connect_timeout":"30s"}}`
	var s Settings
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	want := StoreAccess{S3Endpoint: "http://h:9000", S3Region: "r", S3AllowHTTP: true, SSHIdentity: "/k", KnownHosts: "/kh", ConnectTimeout: Duration(30 * time.Second)}
	if s.StoreAccess == nil || *s.StoreAccess != want {
		t.Fatalf("decoded %+v, want %+v", s.StoreAccess, want)
	}
	out, _ := json.Marshal(s)
	if string(out) != in {
		t.Errorf("round trip:\n%s\nwant\n%s", out, in)
	}
}

func TestSettingsOverride(t *testing.T) {
	doc := Settings{Pkgsrc: "/usr/pkgsrc", Store: "file:///a", MaxTime: "2h", Environment: []string{"A=1"},
		StoreAccess: &StoreAccess{S3Region: "r1"}}
	got := doc.Override(Settings{Store: "s3://b/p", Force: true, Environment: []string{"B=2"},
		StoreAccess: &StoreAccess{S3Endpoint: "http://127.0.0.1:9000"}})
	want := Settings{Pkgsrc: "/usr/pkgsrc", Store: "s3://b/p", MaxTime: "2h", Force: true,
		Environment: []string{"A=1", "B=2"},
		StoreAccess: &StoreAccess{S3Region: "r1", S3Endpoint: "http://127.0.0.1:9000"}}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("Override:\n got %s\nwant %s", g, w)
	}
	if len(doc.Environment) != 1 {
		t.Errorf("Override changed the document's environment: %v", doc.Environment)
	}
	if empty := (Settings{}).Override(Settings{StoreAccess: &StoreAccess{}}); empty.StoreAccess != nil {
		t.Errorf("empty store access should stay nil, got %+v", empty.StoreAccess)
	}
}

func TestReadSettings(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, body, errPart string
	}{
		{"ok", `{"pkgsrc":"/p","max_time":"1h"}`, ""},
		{"unknown field", `{"pkgsrcc":"/p"}`, "unknown field"},
		{"trailing", `{"pkgsrc":"/p"} {}`, "trailing data"},
	} {
		p := filepath.Join(dir, tc.name+".json")
		os.WriteFile(p, []byte(tc.body), 0o644)
		s, err := ReadSettings(p)
		if tc.errPart == "" {
			if err != nil || s.Pkgsrc != "/p" || s.MaxTime != "1h" {
				t.Errorf("%s: %+v, %v", tc.name, s, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.errPart) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v, want one naming %s and %q", tc.name, err, p, tc.errPart)
		}
	}
}

// TestStoreAccessDuration: connect_timeout is a positive Go duration; a
// bad one is an error naming the document.
func TestStoreAccessDuration(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		v    string
		want time.Duration // 0: an error
	}{{`"30s"`, 30 * time.Second}, {`"1m30s"`, 90 * time.Second}, {`"soon"`, 0}, {`"-5s"`, 0}, {`"0s"`, 0}, {`30`, 0}} {
		p := filepath.Join(dir, "job.json")
		os.WriteFile(p, []byte(`{"store_access":{"connect_timeout":`+tc.v+`}}`), 0o644)
		s, err := ReadSettings(p)
		if tc.want == 0 {
			if err == nil || !strings.Contains(err.Error(), p) {
				t.Errorf("connect_timeout %s: error %v, want one naming %s", tc.v, err, p)
			}
			continue
		}
		if err != nil || time.Duration(s.StoreAccess.ConnectTimeout) != tc.want {
			t.Errorf("connect_timeout %s: %+v %v, want %v", tc.v, s.StoreAccess, err, tc.want)
		}
	}
}

// TestStoreAccessStrict: a misspelt store_access key is an error, as any
// other unknown setting of the job document.
func TestStoreAccessStrict(t *testing.T) {
	p := filepath.Join(t.TempDir(), "job.json")
	os.WriteFile(p, []byte(`{"store_access":{"s3_endpoit":"http://h:9000"}}`), 0o644)
	if _, err := ReadSettings(p); err == nil || !strings.Contains(err.Error(), "s3_endpoit") || !strings.Contains(err.Error(), p) {
		t.Fatalf("misspelt key: error %v, want one naming the key and %s", err, p)
	}
}
