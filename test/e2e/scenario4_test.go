package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/sriov"
)

// TestScenarioFour is the README's main job and the old README's way of
// running two clusters, with the defaults: two git clones of the project.
// In the first, `make sim-cluster-up` with nothing set but CRI_BIN (3 nodes,
// PF_COUNT_PER_NODE unset so one PF per worker, the files in the clone's
// own _ci-configs/, the ledgers in the host-wide SR-IOV state directory).
// In the second, `CLUSTER_NAME=sriov2 make cluster-up` on the remaining
// simulated PFs (`scripts/sim-pfs.sh env`). The test switches between them
// by changing folder and setting KUBECONFIG and KUBEVIRT_PROVIDER, as the old
// README says; each cluster-down removes only its own cluster, and `make
// sim-cluster-down` leaves the host as it was: no veths, no simulated sysfs,
// no /dev/vfio it made, no containers, no ledger, no files.
func TestScenarioFour(t *testing.T) {
	requireE2E(t)
	requireNoCluster(t, "sriov", "sriov2")
	if _, err := os.Stat(simState); err == nil {
		t.Fatalf("%s exists: simulated PFs are up on this host (scripts/sim-pfs.sh down removes them)", simState)
	}
	for _, n := range []string{"sriov", "sriov2"} {
		if _, err := os.Stat(sriov.LedgerPath(sriov.DefaultStateDir, n)); err == nil {
			t.Fatalf("cluster %s holds PFs (ledger %s): run its cluster-down first", n, sriov.LedgerPath(sriov.DefaultStateDir, n))
		}
	}
	suspendSuiteVFIO(t)
	before := hostState(t)
	one, two := cloneProject(t, "kubevirtci1"), cloneProject(t, "kubevirtci2")
	// Runs last (cleanups run in reverse): whatever the test left.
	t.Cleanup(func() { runScript(t, one, "scripts/sim-pfs.sh", "down") })
	upstream := envOr("KUBEVIRTCI_UPSTREAM_DIR", filepath.Join(filepath.Dir(repoRoot), "shared", "upstream"))
	a := newCluster(t, clusterOpts{dir: one, defaults: true, upTarget: "sim-cluster-up", downTarget: "sim-cluster-down",
		extra: map[string]string{config.EnvProvider: provider, "KUBEVIRTCI_UPSTREAM_DIR": upstream,
			// Set only because the host may have podman too (the podman
			// scenario installs it), which the tool would pick first.
			config.EnvCRI: "docker"}})
	a.nodes = 3

	a.up()
	checkFilesIn(t, a, filepath.Join(one, "_ci-configs", provider))
	heldA := checkLedger(t, a, 1)

	// The second clone, on the simulated PFs the first left free.
	simEnv := runScript(t, two, "scripts/sim-pfs.sh", "env")
	m := regexp.MustCompile(`(?m)^export SRIOV_SYSFS_ROOT=(\S+)$`).FindStringSubmatch(simEnv)
	if m == nil {
		t.Fatalf("scripts/sim-pfs.sh env printed %q, want export SRIOV_SYSFS_ROOT=...", simEnv)
	}
	b := newCluster(t, clusterOpts{dir: two, defaults: true, name: "sriov2", nodes: 3, extra: map[string]string{
		config.EnvProvider: provider, config.EnvSysfsRoot: m[1], config.EnvCRI: "docker",
		config.EnvNodeImage: nodeImage, config.EnvRegistryImage: registryImage,
		config.EnvMultusImage: multusImage, config.EnvSRIOVCNIImage: sriovCNIImage, config.EnvSRIOVDevicePluginImage: devicePluginImage,
		config.EnvSkipAllocatableWait: "true",
	}})
	b.up()
	checkFilesIn(t, b, filepath.Join(two, "_ci-configs", "sriov2", provider))
	heldB := checkLedger(t, b, 1)
	for pf := range heldB {
		if n, ok := heldA[pf]; ok {
			t.Errorf("PF %s is held by sriov (%s) and sriov2", pf, n)
		}
	}
	checkRegistry(t, a)
	checkRegistry(t, b)

	// Switching: cd to the clone, KUBECONFIG and KUBEVIRT_PROVIDER (and
	// CLUSTER_NAME for the second, for its cluster-down).
	switchTo(t, a)
	switchTo(t, b)

	b.down()
	checkGone(t, b)
	if out, err := a.kubectl("get", "nodes", "-o", "name"); err != nil || !strings.Contains(out, "node/sriov-worker") {
		t.Errorf("sriov after sriov2's cluster-down: %v\n%s", err, out)
	}
	if again := checkLedger(t, a, 1); fmt.Sprint(again) != fmt.Sprint(heldA) {
		t.Errorf("sriov's PFs changed with sriov2's cluster-down: %v, were %v", again, heldA)
	}
	for pf := range heldB {
		if _, err := netlink.LinkByName(pf); err != nil {
			t.Errorf("PF %s of sriov2 is not back on the host: %v", pf, err)
		}
	}

	a.down()
	checkGone(t, a)
	if after := hostState(t); after != before {
		t.Errorf("after make sim-cluster-down the host is\n%s\nwant, as before make sim-cluster-up,\n%s", after, before)
	}
	for _, d := range []string{one, two} {
		if _, err := os.Stat(filepath.Join(d, "_ci-configs")); err == nil {
			t.Errorf("%s/_ci-configs is left", d)
		}
	}
}

// simState is where scripts/sim-pfs.sh keeps the simulator's state and
// sysfs tree.
const simState = "/run/kubevirtci-sim"

var simLink = regexp.MustCompile(`^sim[0-9]+(pf|peer)$`)

// hostState is what the main job may change on the host, as a text.
func hostState(t *testing.T) string {
	t.Helper()
	var lines []string
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if simLink.MatchString(l.Attrs().Name) {
			lines = append(lines, "link "+l.Attrs().Name)
		}
	}
	for _, p := range []string{simState, "/dev/vfio", "/dev/vfio/vfio", sriov.LedgerPath(sriov.DefaultStateDir, "sriov"), sriov.LedgerPath(sriov.DefaultStateDir, "sriov2")} {
		if _, err := os.Stat(p); err == nil {
			lines = append(lines, "exists "+p)
		}
	}
	out, err := docker(context.Background(), "ps", "-a", "--format", "{{.Names}}")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range strings.Fields(out) {
		lines = append(lines, "container "+n)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// suspendSuiteVFIO removes, for the test, the /dev/vfio the suite created
// (prepareHost), so that what sim-cluster-up creates and sim-cluster-down
// removes is seen; it is created again at the end.
func suspendSuiteVFIO(t *testing.T) {
	t.Helper()
	if len(suiteVFIO) == 0 {
		return
	}
	made := append([]string(nil), suiteVFIO...)
	for i := len(made) - 1; i >= 0; i-- {
		if err := os.Remove(made[i]); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if _, err := prepareHost(); err != nil {
			t.Errorf("creating /dev/vfio/vfio again: %v", err)
		}
	})
}

// cloneProject is a git clone of this checkout, with its uncommitted
// changes (modified, deleted and new files) applied.
func cloneProject(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	git := func(args ...string) string {
		out, err := exec.Command("git", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	git("clone", "--quiet", repoRoot, dir)
	for _, f := range strings.Split(git("-C", repoRoot, "ls-files", "-z", "--deleted"), "\x00") {
		if f != "" {
			_ = os.Remove(filepath.Join(dir, f))
		}
	}
	for _, f := range strings.Split(git("-C", repoRoot, "ls-files", "-z", "--modified", "--others", "--exclude-standard"), "\x00") {
		if f == "" {
			continue
		}
		src := filepath.Join(repoRoot, f)
		st, err := os.Stat(src)
		if err != nil {
			continue // deleted
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runScript runs a script of a checkout and returns its output.
func runScript(t *testing.T, dir, script string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, script), args...)
	cmd.Dir = dir
	cmd.Env = environFor(nil)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// checkFilesIn checks that the cluster's files are in dir.
func checkFilesIn(t *testing.T, c *cluster, dir string) {
	t.Helper()
	for _, f := range []string{".kubeconfig", ".kubectl", "config-provider-" + provider + ".sh", "kind-config.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// checkLedger checks that the cluster's ledger in the host-wide state
// directory gives each worker perNode PFs, and returns PF → node.
func checkLedger(t *testing.T, c *cluster, perNode int) map[string]string {
	t.Helper()
	l, err := sriov.ReadLedger(c.stateDir, c.name)
	if err != nil || l == nil {
		t.Fatalf("%s: ledger in %s: %v (nil: %v)", c.name, c.stateDir, err, l == nil)
	}
	held := map[string]string{}
	count := map[string]int{}
	for _, pf := range l.PFs {
		held[pf.Name] = pf.Node
		count[pf.Node]++
	}
	for _, w := range c.workers() {
		if count[w] != perNode {
			t.Errorf("%s: worker %s holds %d PFs, want %d (ledger %v)", c.name, w, count[w], perNode, held)
		}
	}
	return held
}

// switchTo does what the old README says to switch to a cluster: change
// to its clone and set KUBECONFIG and KUBEVIRT_PROVIDER; then both
// cluster-up/kubectl.sh and the cluster's own kubectl see its nodes.
func switchTo(t *testing.T, c *cluster) {
	t.Helper()
	kubeconfig := filepath.Join(c.cfgPath, provider, ".kubeconfig")
	env := map[string]string{"KUBECONFIG": kubeconfig, config.EnvProvider: provider}
	if c.name != config.DefaultClusterName {
		env[config.EnvClusterName] = c.name
	}
	for _, argv := range [][]string{
		{filepath.Join(c.dir, "cluster-up", "kubectl.sh"), "get", "nodes", "-o", "name"},
		{filepath.Join(c.cfgPath, provider, ".kubectl"), "get", "nodes", "-o", "name"},
	} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = c.dir
		cmd.Env = environFor(env)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "node/"+c.name+"-control-plane") || strings.Count(string(out), "node/") != c.nodes {
			t.Errorf("in %s with KUBECONFIG=%s: %s: %v\n%s", c.dir, kubeconfig, strings.Join(argv, " "), err, out)
		}
	}
}
