package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/kubevirt/kubevirtci-go/internal/testlevel"
)

// TestGateFailsWhenTheSuiteCannotRun runs this test binary again with the
// suite asked for (KUBEVIRTCI_E2E=1, as make e2e sets it) but no docker
// engine to drive: DOCKER_HOST names a socket that does not exist, which is
// what `docker info` meets when the engine is stopped. The run must fail
// and say why; a skip there would let CI pass without one cluster. Without
// KUBEVIRTCI_E2E the same run skips (a plain go test ./...). It needs
// neither root nor docker, so it runs at every level.
func TestGateFailsWhenTheSuiteCannotRun(t *testing.T) {
	if os.Getenv("E2E_GATE_CHILD") == "1" {
		return
	}
	// Only this test, which returns at once in the child: if the gate
	// wrongly let the suite through, no cluster would be made.
	run := func(e2e string) (string, int) {
		t.Helper()
		return testlevel.Rerun(t, "TestGateFailsWhenTheSuiteCannotRun",
			"E2E_GATE_CHILD=1",
			EnvE2E+"="+e2e,
			"DOCKER_HOST=unix:///nonexistent/docker.sock",
			"CI=true",
		)
	}

	out, code := run("1")
	if code == 0 {
		t.Fatalf("%s=1 with no docker engine: the run passed, so CI would pass without running the suite:\n%s", EnvE2E, out)
	}
	if !strings.Contains(out, EnvE2E+"=1 but the suite cannot run here") {
		t.Errorf("%s=1 with no docker engine: the run failed (exit %d) without saying why:\n%s", EnvE2E, code, out)
	}
	if os.Geteuid() == 0 && !strings.Contains(out, "no docker engine answers `docker info`") {
		t.Errorf("%s=1 as root with no docker engine: the reason does not name the engine:\n%s", EnvE2E, out)
	}

	if out, code := run(""); code != 0 {
		t.Errorf("without %s the suite must skip, not fail (exit %d):\n%s", EnvE2E, code, out)
	}
}
