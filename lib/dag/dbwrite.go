package dag

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/pkgbulk/pkgbulk/lib/db"
	"github.com/pkgbulk/pkgbulk/lib/pattern"
	"github.com/pkgbulk/pkgbulk/lib/scan"
)

// DBInfo is what WriteDB records in the meta table besides the counts.
type DBInfo struct {
	Inputs  []string // input file names as given ("-" for stdin)
	Limited string   // the limited list file, "" for a full build
	// TreeRevision and Platform are what the scan was made from, if
	// known (meta db.MetaTreeRevision and db.MetaPlatform; "" writes no
	// row): the pull server's skew check.
	TreeRevision, Platform string
	Now                    time.Time
	// Trace, when set, is called as each phase ends (for --timings).
	Trace func(phase string)
}

func (info *DBInfo) trace(phase string) {
	if info.Trace != nil {
		info.Trace(phase)
	}
}

// Counts summarises a database (also pkgdag's --json output).
type Counts struct {
	Packages          int `json:"packages"`
	Selected          int `json:"selected"`
	Depends           int `json:"depends"`
	Unresolved        int `json:"unresolved"`
	UnresolvedPkgs    int `json:"unresolved_packages"`
	Cycles            int `json:"cycles"`
	CyclePkgs         int `json:"cycle_packages"`
	Open              int `json:"open"`
	Prefailed         int `json:"prefailed"`
	IndirectPrefailed int `json:"indirect_prefailed"`
	HistoryRows       int `json:"history_rows"`
}

// CountsOf computes the counts of a resolved and analysed graph (history
// rows excepted, WriteDB fills them in).
func CountsOf(g *Graph, a *Analysis) Counts {
	c := Counts{Packages: len(g.Pkgs), Cycles: len(a.Cycles)}
	for i := range g.Pkgs {
		p := &g.Pkgs[i]
		c.Depends += len(p.Deps)
		c.Unresolved += len(p.Unresolved)
		if len(p.Unresolved) > 0 {
			c.UnresolvedPkgs++
		}
		if a.Selected[i] {
			c.Selected++
		}
		switch a.State[i] {
		case StateOpen:
			c.Open++
		case StatePrefailed:
			c.Prefailed++
		case StateIndirectPrefailed:
			c.IndirectPrefailed++
		}
	}
	for _, cyc := range a.Cycles {
		c.CyclePkgs += len(cyc)
	}
	return c
}

// WriteDB writes the build database of a resolved graph (see Build).
func WriteDB(ctx context.Context, path string, g *Graph, limited []int, info DBInfo) (*Analysis, Counts, error) {
	_, a, counts, err := Build(ctx, path, g.Recs, func(context.Context) (*Graph, []int, error) {
		return g, limited, nil
	}, info)
	return a, counts, err
}

// Build writes the build database of the scan records recs to path
// atomically: it is built in a temporary file in the same directory,
// synced and renamed over path, so an existing database is either replaced
// whole or left untouched. When path already holds a database with a
// history table, its rows are carried over. While another process holds
// the database's lock (db.TryLock: a running pkgsched), Build refuses with
// an error wrapping db.ErrLocked and writes nothing.
//
// resolve returns the resolved graph of recs and the limited selection
// (nil for a full build; see Analyze). It runs concurrently with the first
// insert, the scanned records, which need no resolution: SQLite writes on
// one core only, and on a full tree those records are most of the file.
// The analysis then runs concurrently with the edge inserts. Build returns
// the graph and its analysis when they were computed, even with an error
// from writing.
func Build(ctx context.Context, path string, recs []scan.Record, resolve func(context.Context) (*Graph, []int, error), info DBInfo) (*Graph, *Analysis, Counts, error) {
	// Never swap the database under a running pkgsched: it holds the
	// lock for its whole run. Held here until the rename is done.
	lock, err := db.TryLock(path, "pkgdag build")
	if errors.Is(err, db.ErrLocked) {
		return nil, nil, Counts{}, fmt.Errorf("refusing to replace %s: %w; stop that run first, or write another file", path, err)
	}
	if err != nil {
		return nil, nil, Counts{}, err
	}
	defer lock.Release()
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, nil, Counts{}, fmt.Errorf("create database %s: %w", path, err)
	}
	tmp := f.Name()
	f.Close()
	os.Remove(tmp) // db.Create wants to create the file itself
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()

	bg := startResolve(ctx, recs, resolve, &info)
	defer bg.stop()
	d, err := db.Create(ctx, tmp)
	if err != nil {
		g, a := bg.results()
		return g, a, countsOf(g, a), err
	}
	stopFlush := startWriteback(tmp)
	dropped := dropCache(path)
	counts, err := fill(ctx, d, path, recs, bg, &info)
	if cerr := d.Close(); err == nil && cerr != nil {
		err = cerr
	}
	stopFlush()
	info.trace("close")
	g, a := bg.results()
	if err != nil {
		counts = countsOf(g, a)
		<-dropped
		if re := (resolveError{}); errors.As(err, &re) {
			return g, a, counts, re.err
		}
		return g, a, counts, fmt.Errorf("write database %s: %w", path, err)
	}
	if err := syncFile(tmp); err != nil {
		return g, a, counts, fmt.Errorf("write database %s: %w", path, err)
	}
	info.trace("fsync")
	<-dropped
	if err := os.Rename(tmp, path); err != nil {
		return g, a, counts, fmt.Errorf("write database %s: %w", path, err)
	}
	ok = true
	// A WAL or shm file left by an earlier pkgsched run belongs to the old
	// database; beside the new file SQLite would try to replay it.
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		os.Remove(path + suffix)
	}
	if err := syncFile(dir); err != nil {
		return g, a, counts, fmt.Errorf("write database %s: sync directory: %w", path, err)
	}
	info.trace("rename, sync directory")
	return g, a, counts, nil
}

// resolveError is an error of the resolve function: it is about the
// input, not the database, and Build returns it as it is.
type resolveError struct{ err error }

func (e resolveError) Error() string { return e.err.Error() }
func (e resolveError) Unwrap() error { return e.err }

// background resolves and analyses the graph while the writer inserts the
// scanned records.
type background struct {
	cancel   context.CancelFunc
	resolved chan struct{} // closed when g, limited and err are set
	analysed chan struct{} // closed when a is set (nil after an error)
	g        *Graph
	limited  []int
	err      error // the resolve function's, as a resolveError
	a        *Analysis
}

func startResolve(ctx context.Context, recs []scan.Record, resolve func(context.Context) (*Graph, []int, error), info *DBInfo) *background {
	ctx, cancel := context.WithCancel(ctx)
	bg := &background{cancel: cancel, resolved: make(chan struct{}), analysed: make(chan struct{})}
	go func() {
		defer close(bg.analysed)
		g, limited, err := resolve(ctx)
		if err == nil && len(g.Pkgs) != len(recs) {
			err = fmt.Errorf("resolved graph has %d packages for %d records", len(g.Pkgs), len(recs))
		}
		if err != nil {
			bg.err = resolveError{err}
			close(bg.resolved)
			return
		}
		info.trace("resolve (concurrent)")
		bg.g, bg.limited = g, limited
		close(bg.resolved)
		bg.a = g.Analyze(limited)
		info.trace("analyze (concurrent)")
	}()
	return bg
}

// failed reports, without waiting, whether resolution has failed.
func (bg *background) failed() bool {
	select {
	case <-bg.resolved:
		return bg.err != nil
	default:
		return false
	}
}

// graph waits for the resolution; nil when it failed.
func (bg *background) graph() *Graph {
	<-bg.resolved
	return bg.g
}

// analysis waits for the analysis; nil when resolution failed.
func (bg *background) analysis() *Analysis {
	<-bg.analysed
	return bg.a
}

// results waits for the goroutine to finish.
func (bg *background) results() (*Graph, *Analysis) {
	a := bg.analysis()
	return bg.g, a
}

// stop cancels the resolution if it is still running and waits for it.
func (bg *background) stop() {
	bg.cancel()
	<-bg.analysed
}

// countsOf is CountsOf for a graph that may not have been computed.
func countsOf(g *Graph, a *Analysis) Counts {
	if g == nil || a == nil {
		return Counts{}
	}
	return CountsOf(g, a)
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// str aliases b as a string without copying. The scan buffer is never
// modified, and SQLite copies bound text, so this is safe for binding.
func str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// packagesColumns is the column list of the packages insert, in the order
// the values are appended.
var packagesColumns = []string{
	"id", "pkgname", "pkgbase", "version", "pkgpath", "all_depends", "skip_reason", "fail_reason",
	"no_bin_on_ftp", "restricted", "categories", "maintainer", "use_destdir", "bootstrap_pkg",
	"usergroup_phase", "multi_version", "pbulk_weight", "depends", "depends_given", "rewritten_record",
	"depth", "weight", "selected", "initial_state", "initial_detail",
}

// dependsIndex is depends_dep of db.Schema. It is dropped during the bulk
// insert and created afterwards (one sort instead of 200,000 random
// inserts); TestSchemaMatchesCreate checks the result is identical.
// Building it takes about 0.1 s of the build's single SQLite thread, but
// the transitive "what depends on X" query of docs/schema.md needs it
// (over a minute instead of 0.16 s on the illumos tree without it).
const dependsIndex = "CREATE INDEX depends_dep ON depends(dep_id)"

// packagesIndexes are the indexes of packages in db.Schema, dropped
// during the insert and created afterwards, like dependsIndex.
var packagesIndexes = []struct{ name, create string }{
	{"packages_pkgname", "CREATE UNIQUE INDEX packages_pkgname ON packages(pkgname)"},
	{"packages_pkgpath", "CREATE INDEX packages_pkgpath ON packages(pkgpath)"},
}

// fill writes everything inside one transaction: first the scanned
// records while bg resolves, then what needs the graph.
//
// It works on one connection with its own BEGIN and COMMIT rather than a
// sql.Tx, so that the bulk inserts can use the driver's statements
// directly (see pipeline).
func fill(ctx context.Context, d *sql.DB, path string, recs []scan.Record, bg *background, info *DBInfo) (Counts, error) {
	conn, err := d.Conn(ctx)
	if err != nil {
		return Counts{}, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		return Counts{}, err
	}
	committed := false
	defer func() {
		if !committed {
			conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()

	if err := insertScanRecords(ctx, conn, recs, bg); err != nil {
		if bg.failed() {
			return Counts{}, bg.err
		}
		return Counts{}, fmt.Errorf("insert scan records: %w", err)
	}
	info.trace("insert scan records")
	g := bg.graph()
	if g == nil {
		return Counts{}, bg.err
	}
	info.trace("wait for resolve")

	if _, err := conn.ExecContext(ctx, "DROP INDEX depends_dep"); err != nil {
		return Counts{}, err
	}
	if err := insertDepends(ctx, conn, g); err != nil {
		return Counts{}, fmt.Errorf("insert depends: %w", err)
	}
	info.trace("insert depends rows")
	if _, err := conn.ExecContext(ctx, dependsIndex); err != nil {
		return Counts{}, err
	}
	info.trace("index depends")
	ins := newBatch(conn, "unresolved", []string{"pkg_id", "pattern", "location"}, 100)
	for i := range g.Pkgs {
		for _, u := range g.Pkgs[i].Unresolved {
			if err := ins.add(ctx, i+1, u.Pattern, u.Location); err != nil {
				return Counts{}, fmt.Errorf("insert unresolved: %w", err)
			}
		}
	}
	if err := ins.flush(ctx); err != nil {
		return Counts{}, fmt.Errorf("insert unresolved: %w", err)
	}

	info.trace("insert unresolved")
	a := bg.analysis()
	info.trace("wait for analysis")
	counts := CountsOf(g, a)
	for _, idx := range packagesIndexes {
		if _, err := conn.ExecContext(ctx, "DROP INDEX "+idx.name); err != nil {
			return Counts{}, err
		}
	}
	if err := insertPackages(ctx, conn, g, a); err != nil {
		return Counts{}, fmt.Errorf("insert packages: %w", err)
	}
	info.trace("insert packages")
	for _, idx := range packagesIndexes {
		if _, err := conn.ExecContext(ctx, idx.create); err != nil {
			return Counts{}, err
		}
	}
	info.trace("index packages")
	ins = newBatch(conn, "cycles", []string{"cycle", "pkg_id"}, 100)
	for k, cyc := range a.Cycles {
		for _, v := range cyc {
			if err := ins.add(ctx, k+1, v+1); err != nil {
				return Counts{}, fmt.Errorf("insert cycles: %w", err)
			}
		}
	}
	if err := ins.flush(ctx); err != nil {
		return Counts{}, fmt.Errorf("insert cycles: %w", err)
	}
	hist, err := carryOver(ctx, conn, path)
	if err != nil {
		return Counts{}, err
	}
	counts.HistoryRows = hist
	meta := [][2]string{
		{"schema_version", strconv.Itoa(db.SchemaVersion)},
		{"created", info.Now.UTC().Format(time.RFC3339)},
		{"created_by", "pkgdag"},
		{"inputs", strings.Join(info.Inputs, "\n")},
		{"limited_list", info.Limited},
		{"packages", strconv.Itoa(counts.Packages)},
		{"selected", strconv.Itoa(counts.Selected)},
		{"depends", strconv.Itoa(counts.Depends)},
		{"unresolved", strconv.Itoa(counts.Unresolved)},
		{"unresolved_packages", strconv.Itoa(counts.UnresolvedPkgs)},
		{"cycles", strconv.Itoa(counts.Cycles)},
		{"prefailed", strconv.Itoa(counts.Prefailed)},
		{"indirect_prefailed", strconv.Itoa(counts.IndirectPrefailed)},
		{"history_rows", strconv.Itoa(counts.HistoryRows)},
	}
	for _, kv := range [][2]string{{db.MetaTreeRevision, info.TreeRevision}, {db.MetaPlatform, info.Platform}} {
		if kv[1] != "" {
			meta = append(meta, kv)
		}
	}
	ins = newBatch(conn, "meta", []string{"key", "value"}, 50)
	for _, kv := range meta {
		if err := ins.add(ctx, kv[0], kv[1]); err != nil {
			return Counts{}, fmt.Errorf("insert meta: %w", err)
		}
	}
	if err := ins.flush(ctx); err != nil {
		return Counts{}, fmt.Errorf("insert meta: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return Counts{}, err
	}
	committed = true
	info.trace("history, meta, commit")
	return counts, nil
}

// insertScanRecords writes every record as scanned. It stops early when
// the resolution fails: the database will not be kept.
func insertScanRecords(ctx context.Context, conn *sql.Conn, recs []scan.Record, bg *background) error {
	const rows = 64
	return pipeline(ctx, conn, "scan_records", []string{"pkg_id", "record"}, rows, len(recs), func(c *chunk, i int) error {
		if i%rows == 0 && bg.failed() {
			return bg.err
		}
		c.add(int64(i+1), str(recs[i].Text))
		return nil
	})
}

func insertPackages(ctx context.Context, conn *sql.Conn, g *Graph, a *Analysis) error {
	field := func(r *scan.Record, key string) string {
		v, _ := r.GetBytes(key)
		return str(v)
	}
	nullable := func(r *scan.Record, key string) any {
		if v, ok := r.GetBytes(key); ok {
			return str(v)
		}
		return nil
	}
	return pipeline(ctx, conn, "packages", packagesColumns, 32, len(g.Pkgs), func(c *chunk, i int) error {
		r := &g.Recs[i]
		p := &g.Pkgs[i]
		base, version := pattern.SplitName(p.Name)
		var depends any
		if v, ok := g.DependsValue(i); ok {
			depends = v
		}
		// The presolve view appends the DEPENDS line to the scanned
		// record; only a rewritten record is stored whole.
		var rewritten any
		if len(p.Unresolved) > 0 && !p.Predepends {
			start := len(c.arena)
			c.arena = g.AppendPresolve(c.arena, i)
			rewritten = str(c.arena[start:])
		}
		var given int64
		if p.Predepends {
			given = 1
		}
		// Integers go in as int64, which database/sql passes on
		// without converting.
		var selected int64
		if a.Selected[i] {
			selected = 1
		}
		c.add(
			int64(i+1), p.Name, base, version, p.Location,
			field(r, scan.KeyAllDepends), field(r, scan.KeyPkgSkipReason), g.FailReason(i),
			field(r, scan.KeyNoBinOnFTP), field(r, scan.KeyRestricted), field(r, scan.KeyCategories),
			field(r, scan.KeyMaintainer), field(r, scan.KeyUseDestdir), field(r, scan.KeyBootstrapPkg),
			field(r, scan.KeyUsergroupPhase), nullable(r, scan.KeyMultiVersion), int64(scan.PbulkWeight(r)),
			depends, given, rewritten,
			int64(a.Depth[i]), a.Weight[i], selected, a.State[i], a.Detail[i],
		)
		return nil
	})
}

// chunk is the arguments of one multi-row INSERT, and the memory the
// text arguments point into.
type chunk struct {
	args  []driver.NamedValue
	arena []byte
	rows  int
}

// add appends the values of one row. The driver binds the arguments of a
// statement in one call when they are numbered 1, 2, ... in order.
func (c *chunk) add(values ...any) {
	for _, v := range values {
		c.args = append(c.args, driver.NamedValue{Ordinal: len(c.args) + 1, Value: v})
	}
}

// chunkPool recycles chunks between the producer and SQLite.
var chunkPool = sync.Pool{New: func() any { return new(chunk) }}

func newChunk() *chunk {
	c := chunkPool.Get().(*chunk)
	c.args, c.arena, c.rows = c.args[:0], c.arena[:0], 0
	return c
}

// pipeline inserts n rows, size rows to a statement: row appends the
// values of row i to c (text may point into c.arena, which is the chunk's
// until SQLite has copied it). The rows are prepared in their own
// goroutine, so preparing the next rows overlaps with SQLite writing the
// previous ones, and they go to the driver's statement directly: going
// through database/sql, which converts and checks each of the 1.6 million
// arguments of a full tree on the SQLite thread (the critical path), made
// pkgdag build 0.1 s slower on the illumos scan (median 0.89 s against
// 0.75 s) and used 50 MB more memory. An error from row stops the insert
// and is returned.
func pipeline(ctx context.Context, conn *sql.Conn, table string, cols []string, size, n int, row func(c *chunk, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan *chunk, 4)
	var perr error
	go func() {
		defer close(chunks)
		for start := 0; start < n && perr == nil; start += size {
			c := newChunk()
			for i := start; i < min(start+size, n); i++ {
				if perr = row(c, i); perr != nil {
					break
				}
				c.rows++
			}
			if perr != nil {
				break
			}
			select {
			case chunks <- c:
			case <-ctx.Done():
				perr = ctx.Err()
			}
		}
	}()
	q := insertQuery{table: table, cols: cols}
	err := conn.Raw(func(dc any) error {
		pc, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("database driver %T cannot prepare statements", dc)
		}
		stmts := map[int]driver.Stmt{} // by number of rows
		defer func() {
			for _, st := range stmts {
				st.Close()
			}
		}()
		var err error
		for c := range chunks {
			if err == nil {
				err = execRows(ctx, pc, stmts, q, c)
			}
			if err != nil {
				cancel() // stop the producer; keep draining so it can exit
			}
			clear(c.args) // drop references into the scan buffer
			chunkPool.Put(c)
		}
		return err
	})
	if err != nil {
		return err
	}
	return perr
}

// execRows runs the INSERT of chunk c, with a statement prepared once for
// each number of rows.
func execRows(ctx context.Context, pc driver.ConnPrepareContext, stmts map[int]driver.Stmt, q insertQuery, c *chunk) error {
	st := stmts[c.rows]
	if st == nil {
		var err error
		if st, err = pc.PrepareContext(ctx, q.text(c.rows)); err != nil {
			return err
		}
		stmts[c.rows] = st
	}
	sq, ok := st.(driver.StmtQueryContext)
	if !ok {
		return fmt.Errorf("database driver statement %T cannot run queries", st)
	}
	// A Query binds all arguments in one cgo call in mattn/go-sqlite3;
	// the INSERT has run once it returns.
	rows, err := sq.QueryContext(ctx, c.args)
	if err != nil {
		return err
	}
	return rows.Close()
}

// insertQuery is a multi-row INSERT of cols into table.
type insertQuery struct {
	table string
	cols  []string
}

func (q insertQuery) text(rows int) string {
	var s strings.Builder
	fmt.Fprintf(&s, "INSERT INTO %s (%s) VALUES ", q.table, strings.Join(q.cols, ", "))
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", len(q.cols)), ",") + ")"
	for r := 0; r < rows; r++ {
		if r > 0 {
			s.WriteByte(',')
		}
		s.WriteString(one)
	}
	return s.String()
}

// insertDepends writes one row per edge.
func insertDepends(ctx context.Context, conn *sql.Conn, g *Graph) error {
	// Number the edges, so that pipeline can ask for them by index.
	type edge struct{ pkg, k int32 }
	var edges []edge
	seen := map[int]bool{}
	for i := range g.Pkgs {
		p := &g.Pkgs[i]
		if p.Predepends {
			clear(seen)
		}
		for k, d := range p.Deps {
			// Only a DEPENDS line given in the input can name a package
			// twice; resolution never chooses one twice.
			if p.Predepends {
				if seen[d.Pkg] {
					continue
				}
				seen[d.Pkg] = true
			}
			edges = append(edges, edge{int32(i), int32(k)})
		}
	}
	return pipeline(ctx, conn, "depends", []string{"pkg_id", "dep_id", "pattern", "ord"}, 1000, len(edges), func(c *chunk, i int) error {
		e := edges[i]
		d := &g.Pkgs[e.pkg].Deps[e.k]
		c.add(int64(e.pkg)+1, int64(d.Pkg)+1, d.Pattern, int64(e.k))
		return nil
	})
}

// carried are the tables whose rows a new database takes over from the
// one it replaces: the build durations pkgsched learned, and the pull
// workers' registration tokens the operator handed out (pkgsched token
// add; only their hashes are stored). The autoscaler's one-session tokens
// belong to the run that minted them and are not carried.
var carried = []struct{ table, where string }{
	{"history", ""},
	{"pull_tokens", "one_session = 0"},
}

// carryOver copies the carried tables' rows of the database at path, if
// there is one, into the new database, and returns how many history rows
// it copied. Columns are matched by name so that an older schema's rows
// still carry over; a table the old database lacks is skipped.
func carryOver(ctx context.Context, conn *sql.Conn, path string) (int, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, fmt.Errorf("carry over history from %s: %w", path, err)
	}
	if _, err := conn.ExecContext(ctx, "ATTACH DATABASE ? AS old", path); err != nil {
		return 0, fmt.Errorf("carry over history from %s (move the file away to start without history): %w", path, err)
	}
	defer conn.ExecContext(context.Background(), "DETACH DATABASE old")
	hist := 0
	for _, c := range carried {
		n, err := carryTable(ctx, conn, c.table, c.where)
		if err != nil {
			return 0, fmt.Errorf("carry over %s from %s (move the file away to start without it): %w", c.table, path, err)
		}
		if c.table == "history" {
			hist = n
		}
	}
	return hist, nil
}

// columns lists the columns of schema.table ("" when it does not exist).
func columns(ctx context.Context, conn *sql.Conn, schema, table string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, "SELECT name FROM "+schema+".pragma_table_info(?)", table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// carryTable copies old.table's rows (those where allows) into
// main.table, in the columns both have.
func carryTable(ctx context.Context, conn *sql.Conn, table, where string) (int, error) {
	oldCols, err := columns(ctx, conn, "old", table)
	if err != nil || len(oldCols) == 0 {
		return 0, err // no such table: nothing to carry
	}
	newCols, err := columns(ctx, conn, "main", table)
	if err != nil {
		return 0, err
	}
	var cols []string
	for _, c := range oldCols {
		if slices.Contains(newCols, c) {
			cols = append(cols, `"`+c+`"`)
		}
	}
	list := strings.Join(cols, ", ")
	q := "INSERT OR IGNORE INTO main." + table + " (" + list + ") SELECT " + list + " FROM old." + table
	if where != "" {
		q += " WHERE " + where
	}
	res, err := conn.ExecContext(ctx, q)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// batch inserts the rows of the small tables (unresolved, cycles, meta)
// with multi-row INSERT statements of up to size rows.
type batch struct {
	conn *sql.Conn
	q    insertQuery
	size int
	full *sql.Stmt
	args []any
}

func newBatch(conn *sql.Conn, table string, cols []string, size int) *batch {
	return &batch{conn: conn, q: insertQuery{table: table, cols: cols}, size: size, args: make([]any, 0, size*len(cols))}
}

func (b *batch) pending() int { return len(b.args) / len(b.q.cols) }

func (b *batch) add(ctx context.Context, values ...any) error {
	b.args = append(b.args, values...)
	if b.pending() < b.size {
		return nil
	}
	if b.full == nil {
		st, err := b.conn.PrepareContext(ctx, b.q.text(b.size))
		if err != nil {
			return err
		}
		b.full = st
	}
	err := run(b.full.QueryContext(ctx, b.args...))
	b.args = b.args[:0]
	return err
}

// run finishes an INSERT issued through Query. mattn/go-sqlite3 binds the
// arguments of a Query in one cgo call instead of one per argument, which
// halves the cost of the bulk inserts; the statement has run once Query
// returns.
func run(rows *sql.Rows, err error) error {
	if err != nil {
		return err
	}
	for rows.Next() {
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return err
	}
	return rows.Close()
}

func (b *batch) flush(ctx context.Context) error {
	defer func() {
		if b.full != nil {
			b.full.Close()
			b.full = nil
		}
	}()
	if len(b.args) == 0 {
		return nil
	}
	err := run(b.conn.QueryContext(ctx, b.q.text(b.pending()), b.args...))
	b.args = b.args[:0]
	return err
}
