// Package testlevel is what a test does when the level it belongs to
// (integration, end-to-end, the SR-IOV VM) cannot run on this host: outside
// CI it skips and says why; under CI=true it fails and says why, so that a
// CI run where a whole level silently skipped (no root, no docker engine, no
// unshare) does not pass.
//
// Skips under -short are not levels that cannot run: they stay skips.
package testlevel

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
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

// Rerun runs the running test binary again, only the test named test, with
// env added to this process's environment (a later value wins), and returns
// its combined output and exit code. It is how a test checks what a whole
// test process does when a level cannot run: skip, or fail and exit non-zero.
func Rerun(t testing.TB, test string, env ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("running %s again: %v", os.Args[0], err)
		return "", 0
	}
}
