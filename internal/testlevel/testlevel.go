// Package testlevel is what a test does when the level it belongs to
// (integration, end-to-end, the SR-IOV VM) cannot run on this host: outside
// CI it skips and says why; under CI=true it fails and says why, so that a
// CI run where a whole level silently skipped (no root, no docker engine, no
// unshare) does not pass.
//
// Skips under -short are not levels that cannot run: they stay skips.
package testlevel

import (
	"fmt"
	"os"
	"testing"
)

// InCI reports whether the tests run under CI=true.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable ends t because what its level needs is missing here: a skip
// naming the reason, or under CI=true a failure naming it.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s\n(CI=true: this test level must run in CI; a skip would hide it. See the README's testing section.)", reason)
	}
	t.Skip(reason)
}
