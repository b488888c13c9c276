// Package examples holds no code: it is the home of the bundled example
// pkgsrc-like trees and of the tests that check them with the real bmake.
//
// tree/ is a small package tree written for Debian's bmake: 43 package
// directories (47 scan records with the multi-version variants) with
// dependency chains, a diamond, multi-version Python modules, skip and fail
// reasons, an unresolvable dependency, a bootstrap package, a build that
// really fails and distfiles fetched from MASTER_SITES. cycle-tree/ is a tiny tree whose dependencies form a cycle.
// README.md beside this file is the contract the tools rely on: the make
// targets and variables, how dependencies must be installed before a build,
// and the layout of the package files the tree produces.
//
// The tests enumerate the trees as pbulk does, run `bmake pbulk-index` in
// every package directory and check the records, and build a short
// dependency chain for real in a temporary directory.
package examples
