package testlevel

import (
	"os"
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
		out, code := Rerun(t, "TestUnavailable", "TESTLEVEL_CHILD=1", "CI="+tc.ci)
		if failed := code != 0; failed != tc.wantFail {
			t.Errorf("CI=%q: failed=%v, want %v:\n%s", tc.ci, failed, tc.wantFail, out)
		}
		if !strings.Contains(out, "needs a docker engine") {
			t.Errorf("CI=%q: the reason is not reported:\n%s", tc.ci, out)
		}
		if want := "--- SKIP"; !tc.wantFail && !strings.Contains(out, want) {
			t.Errorf("CI=%q: not a skip:\n%s", tc.ci, out)
		}
	}
}
