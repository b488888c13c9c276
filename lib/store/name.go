package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrInvalidName is wrapped by every error about a name or prefix that
// breaks the naming rules (absolute, "..", empty elements, ...).
var ErrInvalidName = errors.New("invalid object name")

// ErrPermanent is wrapped by errors that retrying cannot cure: failed
// authentication, a missing bucket, a rejected host key. The retry
// decorator gives up at once on them (and on ErrNotExist, ErrInvalidName
// and context errors).
var ErrPermanent = errors.New("permanent store error")

// TempPrefix starts the base name of the temporary objects backends write
// before an atomic rename. Names with an element starting with it are
// invalid, and List never reports them.
const TempPrefix = ".pkgbulk-tmp-"

// Permanent marks err as permanent (see ErrPermanent); nil stays nil.
func Permanent(err error) error {
	if err == nil || errors.Is(err, ErrPermanent) {
		return err
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() []error {
	return []error{p.err, ErrPermanent}
}

// IsPermanent reports whether retrying err is pointless: it wraps
// ErrPermanent, ErrNotExist or ErrInvalidName.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrPermanent) || errors.Is(err, ErrNotExist) || errors.Is(err, ErrInvalidName)
}

// CheckName returns an error wrapping ErrInvalidName unless name is a
// valid object name: non-empty, slash-separated, relative, with no empty,
// "." or ".." elements, no NUL or backslash, and no element starting with
// TempPrefix.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidName)
	}
	if strings.HasSuffix(name, "/") {
		return fmt.Errorf("%w %q: ends with /", ErrInvalidName, name)
	}
	return checkElems(name)
}

// CheckPrefix validates a List prefix: "" (everything), a directory prefix
// such as "All/" or "bulklog/foo/", or a name prefix such as "All/zlib-".
// The same rules as CheckName apply to its elements.
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return checkElems(strings.TrimSuffix(prefix, "/"))
}

func checkElems(name string) error {
	if name == "" || strings.HasPrefix(name, "/") {
		return fmt.Errorf("%w %q: absolute or empty", ErrInvalidName, name)
	}
	if strings.ContainsAny(name, "\x00\\") {
		return fmt.Errorf("%w %q: contains NUL or backslash", ErrInvalidName, name)
	}
	for _, e := range strings.Split(name, "/") {
		switch {
		case e == "":
			return fmt.Errorf("%w %q: empty path element", ErrInvalidName, name)
		case e == "." || e == "..":
			return fmt.Errorf("%w %q: %q element", ErrInvalidName, name, e)
		case strings.HasPrefix(e, TempPrefix):
			return fmt.Errorf("%w %q: element starts with the reserved %q", ErrInvalidName, name, TempPrefix)
		}
	}
	return nil
}

// CtxReader returns a reader that fails with ctx.Err() once ctx is
// cancelled, so that a long copy stops promptly.
func CtxReader(ctx context.Context, r io.Reader) io.Reader {
	return ctxReader{ctx, r}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
