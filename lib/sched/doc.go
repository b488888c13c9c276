// Package sched is pkgsched's scheduling core: which package to build next,
// what a result means for the others, and how all of it is recorded in the
// build database so that a killed run resumes.
//
// # Pieces
//
//   - Graph: the selected packages and their edges, from the database
//     (LoadGraph) or straight from a presolve file (ParsePresolve).
//   - Core: states, unfinished-dependency counts and the ready queue. It
//     does no I/O; Run (real builds through an executor.Executor) and
//     Simulate (a virtual clock) drive the very same Core.
//   - Keys: the priority of every package (see Order).
//
// # States and propagation (pbulk-build's rules)
//
// A package starts in the state pkgdag gave it (open, prefailed,
// indirect-prefailed). Done releases the dependents whose last dependency
// it was, in pbulk's order. Failed, skew and timeout mark every open
// transitive dependent indirect-failed; prefailed roots give
// indirect-prefailed; packages already decided are left alone, so the
// first root to reach a package is the one its detail names. Up-to-date is
// done with detail "up-to-date".
//
// # Order
//
// OrderPath (the default) serves the ready package with the longest
// remaining path first: its estimated duration plus the longest chain of
// estimated durations through its dependents. Estimates are the median of
// the last 5 successful builds of the pkgpath in the history table, else
// the median over all pkgpaths with history (60 s without any) scaled by
// PBULK_WEIGHT/100. Ties go to pbulk's weight, then to the package that
// became ready first. A user priority list puts its packages and their
// dependency closure before everything else. OrderPbulk is pbulk-build's
// queue: the PBULK_WEIGHT sum over the package and its transitive
// dependents, first-ready among equals, dependents released in the
// reverse of the order their DEPENDS lines were read.
//
// # What is recorded, and when
//
// build_state has one row per selected package, created on the first run.
// Before a builder starts, its row is in_processing (attempts+1, worker,
// started_at) and an event "start" is committed. A result is committed in
// one transaction with the dependents it fails (build_state, one event per
// change named after the new state, a history row) before any dependent it
// releases is handed out. A crashed builder (executor.ErrCrash) adds an
// event "crash", crashes+1, and puts the package back to open ("requeue"):
// a crash is never a failed build. When one package's builder crashed
// MaxCrashes times in this run (or CrashStreak builder runs in a row
// crashed), the run stops with an error (CrashLimitError) and the package
// stays open for the next run. A job lost with its worker
// (executor.ErrLost: a host down, a link cut) adds an event "lost" and
// goes back to open without counting a crash; MaxLost losses of one
// package in a run stop it (LostLimitError). A builder
// out of disk space (executor.ErrNoSpace) adds an event "nospace" and puts
// the package back to open, counting no crash; the executor retires that
// builder, and the run stops when none is left. An interrupted job goes
// back to open with an event "requeue" detail "interrupted", not counted
// as a crash. On start, in_processing rows go back to open ("requeue",
// "requeued after restart"), the work directories their builders left are
// removed (executor.Cleaner; an event "cleanup" each) and failures whose
// propagation was not recorded are propagated again. history gets one row per builder result:
// pkgpath, pkgname, finished_at, the result's status (done, up-to-date,
// failed, skew, timeout), wall_ms (pkgrun's, else as measured) and cpu_ms.
// meta key pkgsched.slots holds the last run's slot count (for the ETA of
// pkgsched status). Since schema 3 the history row also has the MAKE_JOBS
// the job was given, the package's MAKE_JOBS_SAFE and the stages' wall and
// CPU times (Models fits the speed-up models of the core policy on them).
//
// Slots. A slot that implements executor.Accepter gets the best ready job
// it accepts (Core.PopAccepted); one that accepts none is parked (kept,
// not given back) and offered jobs again whenever Core.Readied changes;
// when nothing runs and all of the executor's capacity is parked refusing
// every ready job, the run stops (RefusedError) with those packages open.
// A slot that implements executor.CoreSlot gets its job's MAKE_JOBS from
// RunOptions.Cores (CorePolicy, from the remaining critical path and the
// package's model), grown from its builder's free cores and appended to
// the record as a MAKE_JOBS= line.
package sched
