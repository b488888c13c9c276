// Package db owns the build database: the SQLite file that pkgdag writes and
// pkgsched reads and updates. The schema is documented in docs/schema.md
// and versioned with PRAGMA user_version; Open refuses any other version.
//
// Writers: pkgdag creates the file (packages, scan_records, depends, unresolved, meta,
// carried-over history); pkgsched owns build_state, events and history, and
// its pull server and pkgsched token the pull_* tables (lib/pull).
// One writer at a time: pkgsched run holds the database's lock (TryLock)
// for its whole run, and pkgdag build takes it before it replaces the
// file. Readers (pkgsched status and report) use OpenReadOnly and take no
// lock.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"

	_ "github.com/mattn/go-sqlite3" // the SQLite driver
)

// SchemaVersion is stored in PRAGMA user_version.
const SchemaVersion = 3

// PageSize is the page size of a new database. pkgdag writes about 200 MB,
// mostly records of 5 KB: 16 KiB pages make that insert about a quarter
// faster than SQLite's default 4 KiB (a quarter of the page writes). Larger pages
// make pkgsched's small commits write more: its WAL, which grows to about
// 1000 pages between checkpoints, would reach 64 MB with 64 KiB pages.
const PageSize = 16384

// ErrSchema is wrapped by errors about a database of another schema.
var ErrSchema = errors.New("unsupported database schema")

// Schema creates every table of a new database. Kept as one string so the
// doc (docs/schema.md) and the code can be compared line by line.
const Schema = `
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

CREATE TABLE packages (
  id              INTEGER PRIMARY KEY,   -- 1-based load order = presolve order
  pkgname         TEXT NOT NULL,
  pkgbase         TEXT NOT NULL,         -- PKGNAME before the last '-'
  version         TEXT NOT NULL,         -- PKGNAME after the last '-'
  pkgpath         TEXT NOT NULL,         -- PKG_LOCATION
  all_depends     TEXT NOT NULL,         -- ALL_DEPENDS as scanned
  skip_reason     TEXT NOT NULL,         -- PKG_SKIP_REASON
  fail_reason     TEXT NOT NULL,         -- PKG_FAIL_REASON after resolution
  no_bin_on_ftp   TEXT NOT NULL,
  restricted      TEXT NOT NULL,
  categories      TEXT NOT NULL,
  maintainer      TEXT NOT NULL,
  use_destdir     TEXT NOT NULL,
  bootstrap_pkg   TEXT NOT NULL,
  usergroup_phase TEXT NOT NULL,
  multi_version   TEXT,                  -- NULL when the record has no MULTI_VERSION line
  pbulk_weight    INTEGER NOT NULL,      -- PBULK_WEIGHT, 100 when absent or invalid
  depends         TEXT,                  -- resolved DEPENDS line value; NULL when none is written
  depends_given   INTEGER NOT NULL DEFAULT 0, -- 1 when the scanned record already had its DEPENDS line (a presolve file as input)
  rewritten_record TEXT,                 -- NULL, or the whole presolve record when resolution rewrote a scanned line (PKG_FAIL_REASON for an unresolvable dependency)
  depth           INTEGER NOT NULL,      -- pbulk's depth: distinct transitive dependents + 1
  weight          INTEGER NOT NULL,      -- sum of pbulk_weight over the package and its transitive dependents
  selected        INTEGER NOT NULL DEFAULT 1, -- 1 when in the build set (limited list closure)
  initial_state   TEXT NOT NULL,         -- open, prefailed or indirect-prefailed, as pbulk-build starts
  initial_detail  TEXT NOT NULL DEFAULT '' -- why: PKG_SKIP_REASON=..., PKG_FAIL_REASON=..., dependency cycle: ...; for indirect-prefailed the prefailed dependency's pkgname
);
CREATE UNIQUE INDEX packages_pkgname ON packages(pkgname);
CREATE INDEX packages_pkgpath ON packages(pkgpath);

-- Each package's record exactly as the scan printed it. Kept apart from
-- packages so that pkgdag can write these 160 MB (on a full tree) while it
-- still resolves the dependencies.
CREATE TABLE scan_records (
  pkg_id INTEGER PRIMARY KEY REFERENCES packages(id),
  record TEXT NOT NULL
);

-- Each package's record exactly as pbulk-resolve prints it: the scanned
-- record, with the DEPENDS line appended or the rewritten record.
CREATE VIEW presolve (pkg_id, pkgname, record) AS
  SELECT p.id, p.pkgname,
    CASE
      WHEN p.rewritten_record IS NOT NULL THEN p.rewritten_record
      WHEN p.depends IS NULL OR p.depends_given THEN s.record
      ELSE s.record || 'DEPENDS=' || p.depends || char(10)
    END
  FROM packages p JOIN scan_records s ON s.pkg_id = p.id;

-- SCAN_DEPENDS of every package, cut out of the scanned record on read.
CREATE VIEW package_scan_depends (pkg_id, pkgname, scan_depends) AS
  SELECT p.id, p.pkgname,
    CASE WHEN instr(char(10) || s.record, char(10) || 'SCAN_DEPENDS=') > 0 THEN
      substr(s.record, instr(char(10) || s.record, char(10) || 'SCAN_DEPENDS=') + 13,
        instr(substr(s.record, instr(char(10) || s.record, char(10) || 'SCAN_DEPENDS=') + 13), char(10)) - 1)
    END
  FROM packages p JOIN scan_records s ON s.pkg_id = p.id;

CREATE TABLE depends (
  pkg_id  INTEGER NOT NULL REFERENCES packages(id),
  dep_id  INTEGER NOT NULL REFERENCES packages(id),
  pattern TEXT NOT NULL,                 -- the ALL_DEPENDS pattern this edge came from
  ord     INTEGER NOT NULL,              -- position in the DEPENDS line, 0-based
  PRIMARY KEY (pkg_id, dep_id)
) WITHOUT ROWID;
CREATE INDEX depends_dep ON depends(dep_id);

CREATE TABLE unresolved (
  pkg_id   INTEGER NOT NULL REFERENCES packages(id),
  pattern  TEXT NOT NULL,
  location TEXT NOT NULL                 -- the dependency's directory, without ../../
);

CREATE TABLE cycles (
  cycle  INTEGER NOT NULL,               -- cycle number
  pkg_id INTEGER NOT NULL REFERENCES packages(id),
  PRIMARY KEY (cycle, pkg_id)
) WITHOUT ROWID;

-- Scheduler state: one row per selected package, created by pkgsched on
-- its first run over this database and updated before every action.
CREATE TABLE build_state (
  pkg_id      INTEGER PRIMARY KEY REFERENCES packages(id),
  state       TEXT NOT NULL,             -- open in_processing done failed prefailed indirect-failed indirect-prefailed skew timeout
  detail      TEXT NOT NULL DEFAULT '',  -- up-to-date, the failed phase, the root failure of an indirect state
  attempts    INTEGER NOT NULL DEFAULT 0,-- builder runs started
  crashes     INTEGER NOT NULL DEFAULT 0,-- builder runs that crashed (not failed builds)
  worker      TEXT NOT NULL DEFAULT '',  -- executor slot or host of the last attempt
  started_at  INTEGER,                   -- unix ms of the last start
  finished_at INTEGER,                   -- unix ms of the end
  wall_ms     INTEGER,
  result      TEXT                       -- pkgrun's JSON result of the last attempt
);

CREATE TABLE events (
  id      INTEGER PRIMARY KEY,
  at      INTEGER NOT NULL,              -- unix ms
  pkg_id  INTEGER REFERENCES packages(id),
  event   TEXT NOT NULL,                 -- start, done, failed, crash, requeue, ...
  detail  TEXT NOT NULL DEFAULT ''
);

-- Build durations across runs, per pkgpath; pkgdag carries this table over
-- from the database it replaces.
CREATE TABLE history (
  pkgpath     TEXT NOT NULL,
  pkgname     TEXT NOT NULL,
  finished_at INTEGER NOT NULL,          -- unix ms
  state       TEXT NOT NULL,
  wall_ms     INTEGER NOT NULL,
  cpu_ms      INTEGER NOT NULL DEFAULT 0,
  make_jobs   INTEGER NOT NULL DEFAULT 0, -- MAKE_JOBS the build was given (0: none granted)
  make_jobs_safe TEXT NOT NULL DEFAULT '', -- the package's MAKE_JOBS_SAFE as pkgrun saw it ('' unknown, 'no')
  build_wall_ms  INTEGER,                -- the build stage's wall ms; NULL when unknown
  build_cpu_ms   INTEGER,                -- the build stage's CPU ms (user+system of its processes); NULL when unknown
  stages      TEXT,                      -- every stage as JSON [{"name","wall_ms","cpu_ms"}...]; NULL when unknown
  PRIMARY KEY (pkgpath, finished_at, pkgname)
) WITHOUT ROWID;

-- Pull workers (lib/pull): registration tokens, sessions and leases.
-- Secrets are kept only as their SHA-256 (hex); pkgsched token add
-- prints a token once.
CREATE TABLE pull_tokens (
  name        TEXT PRIMARY KEY,          -- the worker's name (pkgsched token add NAME)
  hash        TEXT NOT NULL UNIQUE,      -- hex SHA-256 of the token
  labels      TEXT NOT NULL DEFAULT '',  -- k=v,k=v given by the operator
  one_session INTEGER NOT NULL DEFAULT 0,-- 1: the token opens one session only (a VM's)
  sessions    INTEGER NOT NULL DEFAULT 0,-- sessions opened with it
  created_at  INTEGER NOT NULL,          -- unix ms
  revoked_at  INTEGER                    -- unix ms; NULL while valid
);

CREATE TABLE pull_sessions (
  hash        TEXT PRIMARY KEY,          -- hex SHA-256 of the session secret
  token       TEXT NOT NULL,             -- pull_tokens.name
  worker      TEXT NOT NULL,             -- pull:NAME
  info        TEXT NOT NULL,             -- the worker's registration (JSON, no secret)
  created_at  INTEGER NOT NULL,
  last_seen   INTEGER NOT NULL,
  ended_at    INTEGER,                   -- NULL while open
  end_reason  TEXT NOT NULL DEFAULT ''
);

-- Every lease ever granted. Only a job's current lease (state active, the
-- highest attempt of its pkgname) may heartbeat, upload or report; a
-- pkgsched that starts marks every active lease expired.
CREATE TABLE pull_leases (
  id          TEXT PRIMARY KEY,          -- random, sent with every request about the lease
  pkgname     TEXT NOT NULL,
  attempt     INTEGER NOT NULL,          -- 1, 2, ... over every lease of the pkgname
  session     TEXT NOT NULL,             -- pull_sessions.hash
  worker      TEXT NOT NULL,
  state       TEXT NOT NULL,             -- active done released expired revoked cancelled
  granted_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,          -- moved on by heartbeats
  ended_at    INTEGER,
  UNIQUE (pkgname, attempt)
) WITHOUT ROWID;
`

// Create makes a new database at path with the current schema. path must
// not exist; callers build into a temporary name and rename it into place.
func Create(ctx context.Context, path string) (*sql.DB, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("create database %s: file exists", path)
	}
	// _mutex=no: the pool holds one connection, which database/sql never
	// lends to two goroutines at once, so SQLite's own per-call locking is
	// pure cost (0.1 s of CPU in a pkgdag build of 29,000 packages).
	d, err := sql.Open("sqlite3", "file:"+uriPath.Replace(path)+"?_journal_mode=OFF&_synchronous=OFF&_foreign_keys=off&_mutex=no")
	if err != nil {
		return nil, fmt.Errorf("create database %s: %w", path, err)
	}
	d.SetMaxOpenConns(1)
	// The page size is fixed when the first table is created.
	if _, err := d.ExecContext(ctx, fmt.Sprintf("PRAGMA page_size = %d", PageSize)); err != nil {
		d.Close()
		return nil, fmt.Errorf("create database %s: %w", path, err)
	}
	if _, err := d.ExecContext(ctx, Schema); err != nil {
		d.Close()
		return nil, fmt.Errorf("create database %s: %w", path, err)
	}
	if _, err := d.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion)); err != nil {
		d.Close()
		return nil, fmt.Errorf("create database %s: %w", path, err)
	}
	return d, nil
}

// Open opens an existing database for reading and writing (WAL, so that
// sqlite3 and pkgsched status can read while pkgsched run writes) and
// checks its schema version.
func Open(ctx context.Context, path string) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return open(ctx, path, "_journal_mode=WAL&_synchronous=NORMAL&_busy_timeout=10000&_foreign_keys=off")
}

// OpenReadOnly opens an existing database for reading only, for commands
// that never write (pkgsched status, report, simulate): it works on a
// read-only file system and on a file owned by another user, and changes
// nothing, not even the journal mode. It uses SQLite's read-only mode,
// which sees everything a running pkgsched committed. A database in WAL
// mode (every database pkgsched has run on) whose -shm file is missing and
// cannot be created there (a read-only directory) can only be opened
// immutable; that is done only when no -wal file with data lies beside it,
// so nothing committed is missed.
func OpenReadOnly(ctx context.Context, path string) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	d, err := open(ctx, path, "mode=ro&_busy_timeout=10000")
	if err == nil || errors.Is(err, ErrSchema) {
		return d, err
	}
	if fi, werr := os.Stat(path + "-wal"); werr == nil && fi.Size() > 0 {
		return nil, fmt.Errorf("%w (its write-ahead log %s-wal cannot be read from here)", err, path)
	}
	d, ierr := open(ctx, path, "immutable=1")
	if ierr != nil {
		return nil, err
	}
	return d, nil
}

// uriPath escapes what would end or break the path of an SQLite URI.
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// open opens path with the URI parameters params and checks the schema
// version.
func open(ctx context.Context, path, params string) (*sql.DB, error) {
	d, err := sql.Open("sqlite3", "file:"+uriPath.Replace(path)+"?"+params)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	var v int
	if err := d.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		d.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if v != SchemaVersion {
		d.Close()
		return nil, fmt.Errorf("open database %s: schema version %d, this pkgbulk reads %d: %w", path, v, SchemaVersion, ErrSchema)
	}
	return d, nil
}

// Meta keys naming what the scan was made from, when pkgdag build was told
// (--pkgsrc, --platform): the tree's revision (a git commit or CVS tag)
// and the platform ("OPSYS OS_VERSION/MACHINE_ARCH"). The pull server
// gives jobs only to workers whose tree and platform match.
const (
	MetaTreeRevision = "scan.tree_revision"
	MetaPlatform     = "scan.platform"
)

// Depends calls f for every dependency edge of the database (the ids of
// the package and of the package it depends on), each package's edges in
// its DEPENDS order.
func Depends(ctx context.Context, d *sql.DB, f func(pkg, dep int64)) error {
	rows, err := d.QueryContext(ctx, `SELECT pkg_id, dep_id FROM depends ORDER BY pkg_id, ord`)
	if err != nil {
		return fmt.Errorf("read depends: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p, dep int64
		if err := rows.Scan(&p, &dep); err != nil {
			return fmt.Errorf("read depends: %w", err)
		}
		f(p, dep)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read depends: %w", err)
	}
	return nil
}
