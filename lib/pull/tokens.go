package pull

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// TokenPrefix starts every registration token (so that a secret scanner
// or a reader knows one when it sees one); SessionPrefix every session.
const (
	TokenPrefix   = "pkgbulk-token-"
	SessionPrefix = "pkgbulk-session-"
)

// ErrTokenExists is wrapped by AddToken's error when a valid token of that
// name exists.
var ErrTokenExists = errors.New("token exists")

// ErrNoToken is wrapped by RevokeToken's error for an unknown name.
var ErrNoToken = errors.New("no such token")

// newSecret is prefix + 256 random bits, base64url.
func newSecret(prefix string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random secret: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// hashSecret is what the database keeps of a secret: its hex SHA-256.
func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// newLeaseID is a random lease id (128 bits, hex).
func newLeaseID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random lease id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

var tokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// CheckName checks a token (worker) name: 1 to 63 letters, digits, '.',
// '_' and '-', starting with a letter or digit.
func CheckName(name string) error {
	if !tokenName.MatchString(name) {
		return fmt.Errorf("worker name %q: want 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

var labelKey = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)

// ParseLabels reads k=v,k=v (empty: none).
func ParseLabels(s string) (map[string]string, error) {
	m := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		if err := checkLabel(k, v); err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}

func checkLabel(k, v string) error {
	if !labelKey.MatchString(k) {
		return fmt.Errorf("label key %q: want letters, digits, '.', '_', '/' or '-'", k)
	}
	if len(v) > 256 || strings.ContainsAny(v, ",=\n\r\x00") {
		return fmt.Errorf("label %s=%q: value too long or with ',', '=' or a control character", k, v)
	}
	return nil
}

// FormatLabels writes labels as k=v,k=v in key order.
func FormatLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// AddToken makes a registration token for worker name and stores its
// hash; the token is returned once and kept nowhere. A revoked token of
// the same name is replaced; a valid one is an error wrapping
// ErrTokenExists. A one-session token opens one session only.
func AddToken(ctx context.Context, d *sql.DB, name string, labels map[string]string, oneSession bool) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	for k, v := range labels {
		if err := checkLabel(k, v); err != nil {
			return "", err
		}
	}
	tok, err := newSecret(TokenPrefix)
	if err != nil {
		return "", err
	}
	one := 0
	if oneSession {
		one = 1
	}
	// One statement (no read before the write, so no lock upgrade that
	// could fail under a concurrent writer): a new name, or a revoked
	// token's name, gets the token; a valid token stays.
	res, err := d.ExecContext(ctx, `INSERT INTO pull_tokens (name, hash, labels, one_session, sessions, created_at, revoked_at) VALUES (?, ?, ?, ?, 0, ?, NULL)
		ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, labels = excluded.labels, one_session = excluded.one_session,
		sessions = 0, created_at = excluded.created_at, revoked_at = NULL WHERE pull_tokens.revoked_at IS NOT NULL`,
		name, hashSecret(tok), FormatLabels(labels), one, time.Now().UnixMilli())
	if err != nil {
		return "", fmt.Errorf("add token %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return "", fmt.Errorf("add token %s: %w (revoke it first)", name, ErrTokenExists)
	}
	return tok, nil
}

// RevokeToken revokes the token name and ends its sessions in the
// database; a running server ends them and requeues their jobs at its
// next sweep or heartbeat. Revoking a revoked token is not an error.
func RevokeToken(ctx context.Context, d *sql.DB, name string) error {
	now := time.Now().UnixMilli()
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", name, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE pull_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE name = ?`, now, name)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("revoke token %s: %w", name, ErrNoToken)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE pull_sessions SET ended_at = ?, end_reason = 'token revoked' WHERE token = ? AND ended_at IS NULL`, now, name); err != nil {
		return fmt.Errorf("revoke token %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("revoke token %s: %w", name, err)
	}
	return nil
}

// TokenInfo is one token as token list shows it (no secret).
type TokenInfo struct {
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels"`
	OneSession bool              `json:"one_session"`
	Sessions   int               `json:"sessions"`
	Created    time.Time         `json:"created"`
	Revoked    *time.Time        `json:"revoked,omitempty"`
	// LastSeen is the last request of its newest session (nil: never).
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

// ListTokens lists every token by name.
func ListTokens(ctx context.Context, d *sql.DB) ([]TokenInfo, error) {
	rows, err := d.QueryContext(ctx, `SELECT t.name, t.labels, t.one_session, t.sessions, t.created_at, t.revoked_at,
		(SELECT MAX(last_seen) FROM pull_sessions s WHERE s.token = t.name) FROM pull_tokens t ORDER BY t.name`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []TokenInfo
	for rows.Next() {
		var t TokenInfo
		var labels string
		var one int
		var created int64
		var revoked, seen sql.NullInt64
		if err := rows.Scan(&t.Name, &labels, &one, &t.Sessions, &created, &revoked, &seen); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		t.Labels, _ = ParseLabels(labels)
		t.OneSession = one == 1
		t.Created = time.UnixMilli(created).UTC()
		if revoked.Valid {
			r := time.UnixMilli(revoked.Int64).UTC()
			t.Revoked = &r
		}
		if seen.Valid {
			s := time.UnixMilli(seen.Int64).UTC()
			t.LastSeen = &s
		}
		out = append(out, t)
	}
	return out, rows.Err()
}
