package testlevel

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The helper is run in a child test process, with and without CI=true.
func TestUnavailable(t *testing.T) {
	if os.Getenv("TESTLEVEL_CHILD") == "1" {
		Unavailable(t, "needs %s", "a docker engine")
		return
	}
	for _, tc := range []struct {
		ci       string
		wantFail bool
	}{{"true", true}, {"", false}, {"false", false}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUnavailable$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTLEVEL_CHILD=1", "CI="+tc.ci)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != tc.wantFail {
			t.Errorf("CI=%q: failed=%v, want %v:\n%s", tc.ci, failed, tc.wantFail, out)
		}
		if !strings.Contains(string(out), "needs a docker engine") {
			t.Errorf("CI=%q: the reason is not reported:\n%s", tc.ci, out)
		}
		if want := "--- SKIP"; !tc.wantFail && !strings.Contains(string(out), want) {
			t.Errorf("CI=%q: not a skip:\n%s", tc.ci, out)
		}
	}
}
