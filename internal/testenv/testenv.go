// Package testenv says what a test may do when something it needs is not
// on this machine: skip, except under CI, which must never pass by
// skipping. It is for tests only.
//
// # Invariants
//
//   - [Flag] is true exactly when its environment variable parses as a
//     true boolean (strconv.ParseBool); [CI] is Flag("CI").
//   - [Unavailable] never returns: it skips t, or fails it when [CI] is true.
package testenv

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// Flag reports whether the environment variable name is set to a true
// value (1, t, true, TRUE…).
func Flag(name string) bool {
	on, _ := strconv.ParseBool(os.Getenv(name))
	return on
}

// CI reports whether CI is set to a true value.
func CI() bool { return Flag("CI") }

// Unavailable ends t because something it needs is missing, described by
// format and args: it skips t, or under CI fails it, saying so.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if !CI() {
		t.Skip("skipping: " + msg)
	}
	t.Fatal("CI is set, so failing rather than skipping: " + msg)
}
