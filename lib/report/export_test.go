package report

import "testing"

// FixtureDB writes the test build database of every state, for the
// command tests in package report_test.
func FixtureDB(t *testing.T) string { return makeDB(t, fixture(), false) }

// PutLogs writes log files into a file store directory.
func PutLogs(t *testing.T, storeDir string, files ...string) { putLogs(t, storeDir, files...) }
