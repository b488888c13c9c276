package providertest

import (
	"context"
	"strings"
	"testing"

	"github.com/pkgbulk/pkgbulk/lib/executor/pullexec"
	"github.com/pkgbulk/pkgbulk/lib/provider"
)

// PullEnv is an Env whose machines register with the pull executor px:
// Config, Mint (one-session tokens) and Joined are filled in; the caller
// sets New, and Boot and Spot where they differ.
func PullEnv(px *pullexec.Executor) Env {
	return Env{
		Config: provider.WorkerConfig{ServerURL: px.URL(), Fingerprint: px.Fingerprint()},
		Mint: func(t *testing.T, name string) string {
			tok, err := px.MintToken(context.Background(), name, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		},
		Joined: func(t *testing.T) []string {
			var names []string
			for _, w := range px.Workers() {
				names = append(names, strings.TrimPrefix(w.Name, "pull:"))
			}
			return names
		},
	}
}
