package merge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkgbulk/pkgbulk/lib/store"
)

// stateObject records what the last merge was built from, so that the
// next one can take the entries of unchanged packages from the published
// summary instead of fetching 30,000 fragments again (one request each
// on a remote store).
const stateObject = "index/merge-state.json"

// racyMargin is how much older than the newest object of the last
// merge's listing an object must look to be trusted unchanged. An object
// rewritten with the same size in the clock tick in which that listing
// saw it would look unchanged (S3 and SFTP report seconds); it was then
// as new as the newest object listed, so only strictly older objects are
// trusted, as racy-git does. The margin adds room for stores whose ticks
// are coarser (FAT keeps 2 s) or that round times differently.
const racyMargin = 2 * time.Second

// mergeState is stateObject's content.
type mergeState struct {
	Version int `json:"version"`
	// SummarySHA256 is the digest of the summary the merge published
	// (or found already published).
	SummarySHA256 string `json:"summary_sha256"`
	// Listed is the newest modification time among the objects that
	// merge listed in All/ and index/. Every object is timed by the
	// store's own clock, so Listed is no later than the listing: an
	// object modified since then has a later time.
	Listed time.Time `json:"listed"`
	Suffix string    `json:"suffix"`
	Cksum  bool      `json:"cksum"` // entries were computed with FILE_CKSUM
	// SHA512SHA256 is the digest of the text of the SHA512.bz2 the merge
	// published (or found), when it did.
	SHA512SHA256 string `json:"sha512_sha256,omitempty"`
}

const stateVersion = 1

// previous is what the last merge left in the store: its summary (read
// in the background while Merge lists the store) and its state.
type previous struct {
	done   chan struct{}
	cancel context.CancelFunc

	// Set before done is closed:
	sum    []byte      // the published summary; nil when a format is missing or unreadable
	state  *mergeState // nil when absent, unreadable or of another kind
	sha512 []byte      // the text of the published SHA512.bz2, with SHA512 and a state
	err    error       // the store failed reading the summary

	sumSHA256 string // of sum, once reusable has computed it
}

// loadPrevious starts reading the published summary and, with withState,
// the merge state.
func loadPrevious(ctx context.Context, s store.Store, o Options, withState bool) *previous {
	ctx, cancel := context.WithCancel(ctx)
	p := &previous{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(p.done)
		var wg sync.WaitGroup
		if withState {
			wg.Go(func() { p.state = readState(ctx, s) })
			if o.SHA512 {
				wg.Go(func() { p.sha512, _ = getDecompressed(ctx, s, "SHA512.bz2") })
			}
		}
		p.sum, p.err = oldSummary(ctx, s, o)
		wg.Wait()
	}()
	return p
}

// ready reports whether the reading has finished.
func (p *previous) ready() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the reading to finish.
func (p *previous) wait() { <-p.done }

// stop cancels the reading and waits for it.
func (p *previous) stop() {
	p.cancel()
	<-p.done
}

// readState returns the merge state, or nil if there is none that can be
// used: a lost or damaged state only costs a full read.
func readState(ctx context.Context, s store.Store) *mergeState {
	rc, err := s.Get(ctx, stateObject)
	if err != nil {
		return nil
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil
	}
	var st mergeState
	if json.Unmarshal(b, &st) != nil || st.Version != stateVersion {
		return nil
	}
	return &st
}

// oldEntry is an entry of the published summary.
type oldEntry struct {
	text    []byte // the entry with its blank line
	pkgName string // its PKGNAME; "" when it has none or several
	size    int64  // its FILE_SIZE
	digest  string // the package's SHA-512 in the published SHA512.bz2, if known
}

// reusable returns the entries of the previous summary (with the digests
// of the previous SHA512.bz2 when it matches the state too), by package
// file name, and the time before which an object counts as unchanged;
// nil when the state does not describe the published summary or was made
// with other options.
func (p *previous) reusable(o Options) (map[string]*oldEntry, time.Time) {
	st := p.state
	if st == nil || p.sum == nil || st.Suffix != o.Suffix || st.Cksum != o.Cksum {
		return nil, time.Time{}
	}
	p.sumSHA256 = hexSHA256(p.sum)
	if p.sumSHA256 != st.SummarySHA256 {
		return nil, time.Time{} // published by someone else, or since
	}
	entries := map[string]*oldEntry{}
	rest := p.sum
	for len(rest) > 0 {
		i := bytes.Index(rest, []byte("\n\n"))
		if i < 0 {
			return nil, time.Time{} // not a summary this package wrote
		}
		text := rest[: i+2 : i+2]
		rest = rest[i+2:]
		var name, pkgName string
		var size int64 = -1
		pkgNames := 0
		for line := range bytes.Lines(text[:i+1]) {
			if v, ok := bytes.CutPrefix(line, []byte("PKGNAME=")); ok {
				pkgName = string(bytes.TrimSuffix(v, []byte("\n")))
				pkgNames++
			} else if v, ok := bytes.CutPrefix(line, []byte("FILE_NAME=")); ok {
				name = string(bytes.TrimSuffix(v, []byte("\n")))
			} else if v, ok := bytes.CutPrefix(line, []byte("FILE_SIZE=")); ok {
				size, _ = strconv.ParseInt(string(bytes.TrimSuffix(v, []byte("\n"))), 10, 64)
			}
		}
		if pkgNames != 1 {
			pkgName = ""
		}
		if name != "" && size >= 0 {
			entries[name] = &oldEntry{text: text, pkgName: pkgName, size: size}
		}
	}
	if p.sha512 != nil && st.SHA512SHA256 != "" && hexSHA256(p.sha512) == st.SHA512SHA256 {
		for line := range strings.Lines(string(p.sha512)) {
			path, d, ok := strings.Cut(strings.TrimPrefix(line, "SHA512 ("), ") = ")
			d = strings.TrimSuffix(d, "\n")
			if e := entries[strings.TrimPrefix(path, "All/")]; ok && e != nil && len(d) == 128 {
				e.digest = d
			}
		}
	}
	return entries, st.Listed.Add(-racyMargin)
}

func hexSHA256(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

// reuse gives p the entry of the previous summary when the package and
// what its entry came from are unchanged since that summary was made:
// the same size, and modified before the previous listing (by the
// margin). An entry is taken from a fragment, so a package whose
// fragment is gone is read again (deleting a fragment forces its
// recomputation); with Cksum, fragments are not used and only the
// package counts. The package's digest, which depends on nothing else,
// is taken when known. An entry that is not of this package by its one
// PKGNAME (a summary published before pkgindex checked that) is not
// reused: the package is read again and judged.
func reuse(p *pkg, entries map[string]*oldEntry, before time.Time, o Options) bool {
	e := entries[strings.TrimPrefix(p.file, "All/")]
	if e == nil || e.size != p.info.Size || !p.info.ModTime.Before(before) {
		return false
	}
	if e.pkgName != p.name {
		return false
	}
	p.digest = e.digest
	if !o.Cksum && (p.frag == nil || !p.frag.ModTime.Before(before)) {
		return false
	}
	p.entry, p.reused = e.text, true
	return true
}

func (a *mergeState) same(b mergeState) bool {
	return a.Version == b.Version && a.SummarySHA256 == b.SummarySHA256 && a.Listed.Equal(b.Listed) &&
		a.Suffix == b.Suffix && a.Cksum == b.Cksum && a.SHA512SHA256 == b.SHA512SHA256
}

// writeState records the merge that published sum (and SHA512.bz2 with
// the text sha512) from a listing whose newest object was modified at
// listed, unless the store holds that state already. sumSHA256 is sum's
// digest when known (an unchanged summary was hashed by reusable).
func writeState(ctx context.Context, s store.Store, o Options, old *mergeState, sum []byte, sumSHA256 string, sha512 []byte, listed time.Time) error {
	if sumSHA256 == "" {
		sumSHA256 = hexSHA256(sum)
	}
	st := mergeState{Version: stateVersion, SummarySHA256: sumSHA256,
		Listed: listed.UTC(), Suffix: o.Suffix, Cksum: o.Cksum}
	if sha512 != nil {
		st.SHA512SHA256 = hexSHA256(sha512)
	}
	if old != nil && old.same(st) {
		return nil
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if err := s.Put(ctx, stateObject, bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("save %s: %w", stateObject, err)
	}
	return nil
}
