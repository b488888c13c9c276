package job

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestStoreAccessOverride(t *testing.T) {
	doc := &StoreAccess{S3Endpoint: "http://a:1", S3Region: "r1", SSHIdentity: "/k", ConnectTimeout: "40s"}
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
		{name: "flags win", doc: doc, over: StoreAccess{S3Region: "r2", ConnectTimeout: "5s"},
			want: &StoreAccess{S3Endpoint: "http://a:1", S3Region: "r2", SSHIdentity: "/k", ConnectTimeout: "5s"}},
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
	want := StoreAccess{S3Endpoint: "http://h:9000", S3Region: "r", S3AllowHTTP: true, SSHIdentity: "/k", KnownHosts: "/kh", ConnectTimeout: "30s"}
	if s.StoreAccess == nil || *s.StoreAccess != want {
		t.Fatalf("decoded %+v, want %+v", s.StoreAccess, want)
	}
	out, _ := json.Marshal(s)
	if string(out) != in {
		t.Errorf("round trip:\n%s\nwant\n%s", out, in)
	}
}
