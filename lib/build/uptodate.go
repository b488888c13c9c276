package build

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

// upToDate is pbulk's pkg-up-to-date (spec §2.4): it reports whether the
// package already in the store may be kept, and when not, why (for the
// log). The error is reserved for a store that cannot be read.
func (b *Builder) upToDate(ctx context.Context, j *Job) (bool, string, error) {
	name := "All/" + j.PkgName + b.suffix()
	info, err := b.Store.Stat(ctx, name)
	if store.IsNotExist(err) {
		return false, name + " is not in the store", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("stat %s in %s: %w", name, b.Store, err)
	}
	rc, err := b.Store.Get(ctx, name)
	if store.IsNotExist(err) {
		return false, name + " vanished from the store", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("get %s from %s: %w", name, b.Store, err)
	}
	meta, err := readMeta(name, rc)
	rc.Close()
	if err != nil {
		// A package that cannot be read is rebuilt, not an error.
		return false, fmt.Sprintf("%s: cannot read its metadata: %v", name, err), nil
	}
	ids, order, err := parseBuildVersion(meta["+BUILD_VERSION"])
	if err != nil {
		return false, fmt.Sprintf("%s: %v", name, err), nil
	}
	for _, file := range order {
		same, why := sameID(filepath.Join(b.pkgsrc(), filepath.FromSlash(file)), ids[file])
		if !same {
			return false, fmt.Sprintf("%s: %s", file, why), nil
		}
	}
	for _, dep := range plistValues(parsePlist(meta["+CONTENTS"]), "blddep") {
		if !slices.Contains(j.Depends, dep) {
			return false, fmt.Sprintf("built with %s, which is not among the job's DEPENDS", dep), nil
		}
		if b.Settings.SkipAgeCheck {
			continue
		}
		dname := "All/" + dep + b.suffix()
		dinfo, err := b.Store.Stat(ctx, dname)
		if store.IsNotExist(err) {
			return false, dname + " is not in the store", nil
		}
		if err != nil {
			return false, "", fmt.Errorf("stat %s in %s: %w", dname, b.Store, err)
		}
		if !olderThan(dinfo.ModTime, info.ModTime) {
			return false, fmt.Sprintf("dependency %s is not older than the package", dname), nil
		}
	}
	return true, "", nil
}

// olderThan is pkg-up-to-date's "dep -ot pkg", except for stores whose
// clock has whole seconds (S3's Last-Modified): there a dependency and its
// dependent stored within one second carry equal times, and since pkgrun
// stores a package only after fetching its dependencies, equal whole-second
// times mean "older" rather than a rebuild on every run.
func olderThan(dep, pkg time.Time) bool {
	if dep.Before(pkg) {
		return true
	}
	return dep.Equal(pkg) && dep.Nanosecond() == 0 && pkg.Nanosecond() == 0
}

// netbsdID matches the first RCS keyword the way pkg-up-to-date's sed does.
var netbsdID = regexp.MustCompile(`\$NetBSD[^$]*\$`)

// sameID compares a +BUILD_VERSION id with the current file: a $NetBSD
// keyword with the file's first keyword, anything else with the SHA256 hex
// digest of the file (pkg_admin digest).
func sameID(file, id string) (bool, string) {
	f, err := os.Open(file)
	if err != nil {
		return false, "no longer in the tree"
	}
	defer f.Close()
	if len(id) >= 7 && id[:7] == "$NetBSD" {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			if m := netbsdID.FindString(sc.Text()); m != "" {
				if m == id {
					return true, ""
				}
				return false, fmt.Sprintf("keyword changed from %q to %q", id, m)
			}
		}
		return false, "has no $NetBSD keyword any more"
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, "cannot be read: " + err.Error()
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != id {
		return false, "changed (SHA256 " + sum + ", package built from " + id + ")"
	}
	return true, ""
}
