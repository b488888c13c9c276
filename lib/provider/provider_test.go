package provider

import (
	"fmt"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	ok := StartRequest{Workers: []Worker{{Name: "w1", Token: "t"}}, Config: WorkerConfig{ServerURL: "https://h"}, Tags: map[string]string{TagRun: "db"}}
	tests := []struct {
		name string
		edit func(*StartRequest)
		want string // substring of the error; "" for none
	}{
		{"ok", func(*StartRequest) {}, ""},
		{"no workers", func(r *StartRequest) { r.Workers = nil }, "no workers"},
		{"no run tag", func(r *StartRequest) { r.Tags = nil }, TagRun},
		{"no url", func(r *StartRequest) { r.Config.ServerURL = "" }, "server URL"},
		{"no name", func(r *StartRequest) { r.Workers = []Worker{{Token: "t"}} }, "no name"},
		{"no token", func(r *StartRequest) { r.Workers = []Worker{{Name: "a"}} }, "no token"},
		{"twice", func(r *StartRequest) { r.Workers = []Worker{{"a", "t"}, {"a", "u"}} }, "twice"},
		{"slash", func(r *StartRequest) { r.Workers = []Worker{{"a/b", "t"}} }, "slash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			tt.edit(&r)
			err := r.Check()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Check() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestWorkerNeverShowsToken(t *testing.T) {
	w := Worker{Name: "w1", Token: "secret-token"}
	for _, s := range []string{fmt.Sprint(w), fmt.Sprintf("%v %+v %#v %s", w, w, w, w), fmt.Sprint([]Worker{w})} {
		if strings.Contains(s, "secret") {
			t.Errorf("formatted worker shows its token: %s", s)
		}
	}
}

func TestMachineTagsAndMatches(t *testing.T) {
	r := StartRequest{Spot: true, Tags: map[string]string{TagRun: "/db"}}
	tags := r.MachineTags(Worker{Name: "w1"})
	if tags[TagWorker] != "w1" || tags[TagSpot] != "true" || tags[TagRun] != "/db" {
		t.Fatalf("MachineTags = %v", tags)
	}
	if r.Tags[TagWorker] != "" {
		t.Fatal("MachineTags changed the request's tags")
	}
	if !Matches(tags, map[string]string{TagRun: "/db"}) || Matches(tags, map[string]string{TagRun: "/other"}) || Matches(nil, map[string]string{TagRun: "/db"}) || !Matches(nil, nil) {
		t.Fatal("Matches is wrong")
	}
	if got := strings.Join(LabelArgs(map[string]string{"b": "2", "a": "1"}), ","); got != "a=1,b=2" {
		t.Fatalf("LabelArgs = %s", got)
	}
}
