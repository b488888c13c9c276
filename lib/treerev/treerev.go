// Package treerev names the revision of a pkgsrc tree, so that a build's
// scan and the builders that build from their own copy of the tree can be
// checked to be the same: the commit of a git checkout, or the sticky tag
// or date of a CVS one.
package treerev

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Of returns the revision of the tree at dir: `git rev-parse HEAD` in a
// git checkout, the content of CVS/Tag in a CVS one, else "" (unknown: no
// check is possible).
func Of(ctx context.Context, dir string) string {
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD")
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.Output(); err == nil {
			return strings.TrimSpace(string(out))
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "CVS", "Tag")); err == nil {
		return string(bytes.TrimSpace(b))
	}
	return ""
}
