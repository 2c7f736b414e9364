package kindsriov

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/cgroupv1"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/localregistry"
	"github.com/kubevirt/kubevirtci-go/internal/sriov"
)

// The orchestration of cluster-up and cluster-down, on fakes of the
// container engine, kind, the cluster's API and the SR-IOV manager.

// otherCluster is a cluster that was there before: it holds pf3 in its
// worker, which no run of the tests may touch.
func hostWithOtherCluster() *world {
	w := newWorld("pf0", "pf1", "pf2", "pf3")
	w.containers["other-worker"] = &fakeContainer{cluster: "other"}
	w.containers["other-worker"].Name, w.containers["other-worker"].Running, w.containers["other-worker"].PID = "other-worker", true, 900
	w.ledgers["other"] = []string{"pf3"}
	p := w.pf("pf3")
	p.node, p.vfs = "other-worker", 6
	return w
}

func stepIndex(t *testing.T, steps []step, creates string) int {
	for i, s := range steps {
		if s.creates == creates {
			return i
		}
	}
	t.Fatalf("no step creates %s", creates)
	return -1
}

func (h *harness) exists(container string) bool {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	_, ok := h.w.containers[container]
	return ok
}

func (h *harness) fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// checkPFsHome fails unless every PF of cluster sriov is on the host with
// its VF count restored and the ledger gone, and the other cluster's PF is
// where it was.
func (h *harness) checkPFsHome(when string) {
	h.t.Helper()
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	if l, ok := h.w.ledgers["sriov"]; ok {
		h.t.Errorf("%s: the ledger of sriov is left: %v", when, l)
	}
	for _, p := range h.w.pfs[:3] {
		if p.node != "" || p.vfs != p.origVF {
			h.t.Errorf("%s: PF %s in node %q with %d VFs, want on the host with %d", when, p.name, p.node, p.vfs, p.origVF)
		}
	}
	if p := h.w.pf("pf3"); p.node != "other-worker" || p.vfs != 6 || fmt.Sprint(h.w.ledgers["other"]) != "[pf3]" {
		h.t.Errorf("%s: the other cluster's PF was touched: node %q, %d VFs, ledger %v", when, p.node, p.vfs, h.w.ledgers["other"])
	}
}

// down runs Down twice; both must succeed and leave the host as before.
func (h *harness) down(when, before string) {
	h.t.Helper()
	for i := 1; i <= 2; i++ {
		if err := h.p.Down(context.Background()); err != nil {
			h.t.Fatalf("%s: cluster-down #%d: %v\n%s", when, i, err, h.log)
		}
		if got := h.snapshot(); got != before {
			h.t.Fatalf("%s: after cluster-down #%d the host is\n%s\nwant, as before cluster-up,\n%s", when, i, got, before)
		}
	}
}

func TestUpThenDownLeavesTheHostAsItWas(t *testing.T) {
	h := newHarness(t, hostWithOtherCluster(), nil)
	before := h.snapshot()
	if err := h.p.Up(context.Background()); err != nil {
		t.Fatalf("cluster-up: %v\n%s", err, h.log)
	}
	c := h.p.cfg()
	for _, want := range []string{"container sriov-control-plane", "container sriov-worker ", "container sriov-worker2", "container sriov-registry",
		"PF pf0 in sriov-worker, 6 VFs", "PF pf1 in sriov-worker2, 6 VFs", "ledger sriov: [pf0 pf1]", "file kind-1.22-sriov/.kubeconfig", "file kind-1.22-sriov/.kubectl", "file kind-1.22-sriov/config-provider-kind-1.22-sriov.sh"} {
		if !strings.Contains(h.snapshot(), want) {
			t.Errorf("after cluster-up the host lacks %q:\n%s", want, h.snapshot())
		}
	}
	if h.deployed != 1 {
		t.Errorf("components deployed %d times", h.deployed)
	}
	if !strings.Contains(h.log.String(), "Cluster sriov is ready") {
		t.Errorf("no summary:\n%s", h.log)
	}
	// A VM in a worker holds a VF: the VF counts can only be reset once the
	// nodes are gone, so Down must delete them first.
	h.w.containers[c.WorkerNodes()[0]].vm = true
	h.log.Reset()
	h.down("after a cluster-up", before)
	h.checkPFsHome("after cluster-down")
	out := h.log.String()
	// The registry's removal runs beside the files' and the cluster's:
	// it starts after the PFs are home and ends before the VF counts.
	for _, order := range [][]string{
		{"✓ Returning SR-IOV PFs to the host", "• Removing registry sriov-registry", "✓ Removing registry sriov-registry", "• Restoring the PFs' VF counts"},
		{"✓ Returning SR-IOV PFs to the host", "✓ Removing kubectl and config-provider files", "✓ Deleting kind cluster sriov", "✓ Restoring the PFs' VF counts", "Cluster sriov is gone."},
	} {
		last := -1
		for _, s := range order {
			i := strings.Index(out, s)
			if i < last {
				t.Errorf("cluster-down: %q out of order (want %v):\n%s", s, order, out)
			}
			last = i
		}
	}
}

// kubectl is copied out of a node once per node image: the next
// cluster-up takes it from the cache.
func TestKubectlCachedBetweenClusterUps(t *testing.T) {
	w := newWorld("pf0", "pf1")
	h := newHarness(t, w, nil)
	w.images[h.p.cfg().NodeImage] = true
	before := h.snapshot()
	for i := 1; i <= 2; i++ {
		if err := h.p.Up(context.Background()); err != nil {
			t.Fatalf("cluster-up %d: %v\n%s", i, err, h.log)
		}
		if b, err := os.ReadFile(h.p.cfg().KubectlHostPath()); err != nil || string(b) != "kubectl" {
			t.Fatalf("cluster-up %d: kubectl %q, %v", i, b, err)
		}
		h.down(fmt.Sprintf("after cluster-up %d", i), before)
	}
	if w.copies != 1 {
		t.Errorf("kubectl copied out of a node %d times in two cluster-ups, want once", w.copies)
	}
}

// A failing undo that runs beside the others does not stop them; Down
// reports it, and does not restore the VF counts until it is fixed.
func TestDownWhenTheRegistryRemovalFails(t *testing.T) {
	h := newHarness(t, hostWithOtherCluster(), nil)
	before := h.snapshot()
	if err := h.p.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.log.Reset()
	h.w.fail["registry rm"] = errInjected // once
	err := h.p.Down(context.Background())
	if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "Removing registry sriov-registry") || !strings.Contains(err.Error(), "run `make cluster-down` again") {
		t.Fatalf("cluster-down: %v, want the failed registry removal and what to do", err)
	}
	out := h.log.String()
	if !strings.Contains(out, "✓ Deleting kind cluster sriov") || strings.Contains(out, "Restoring the PFs' VF counts") {
		t.Errorf("cluster-down with a failing registry removal: want the cluster deleted and the VF counts not yet restored:\n%s", out)
	}
	h.down("after fixing the registry removal", before)
	h.checkPFsHome("after the second cluster-down")
}

func TestUpOnALiveClusterChangesNothing(t *testing.T) {
	h := newHarness(t, hostWithOtherCluster(), nil)
	if err := h.p.Up(context.Background()); err != nil {
		t.Fatalf("cluster-up: %v\n%s", err, h.log)
	}
	up := h.snapshot()
	h.log.Reset()
	err := h.p.Up(context.Background())
	var already *alreadyUpError
	if !errors.As(err, &already) {
		t.Fatalf("second cluster-up: %v, want the cluster is already up", err)
	}
	for _, want := range []string{"cluster sriov is already up; nothing was changed", "cluster:     sriov", "SR-IOV:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("second cluster-up: error lacks %q:\n%v", want, err)
		}
	}
	if got := h.snapshot(); got != up {
		t.Errorf("second cluster-up changed the host:\n%s\nwas\n%s", got, up)
	}
	if strings.Contains(h.log.String(), "Returning") || strings.Contains(h.log.String(), "Deleting") {
		t.Errorf("second cluster-up undid something:\n%s", h.log)
	}
}

func TestDownWithNothingThere(t *testing.T) {
	h := newHarness(t, hostWithOtherCluster(), nil)
	h.down("nothing there", h.snapshot())
	h.checkPFsHome("nothing there")
}

// Every step fails in turn, at its start and at its end (when all it
// creates exists): the PFs go back, what the run created is left for
// inspection and named, and cluster-down removes it.
func TestUpFailingAtEveryStep(t *testing.T) {
	for i, s := range newHarness(t, newWorld(), nil).p.steps() {
		for _, after := range []bool{false, true} {
			name := fmt.Sprintf("step %d %q after=%v", i, s.name, after)
			t.Run(name, func(t *testing.T) {
				h := newHarness(t, hostWithOtherCluster(), nil)
				before := h.snapshot()
				steps := h.p.steps()
				n := 0
				h.p.deps.hook = func(ctx context.Context, _ string, a bool) error {
					if !a {
						n++
					}
					if n-1 == i && a == after {
						return errInjected
					}
					return nil
				}
				err := h.p.Up(context.Background())
				if !errors.Is(err, errInjected) {
					t.Fatalf("cluster-up: %v, want the injected failure", err)
				}
				ran := func(creates string) bool {
					j := stepIndex(t, steps, creates)
					return j < i || (j == i && after)
				}
				c := h.p.cfg()
				left := map[string]bool{
					"kind cluster": h.exists(c.ControlPlaneNode()),
					"registry":     h.exists(c.RegistryContainer()),
					"kubectl file": h.fileExists(c.KubectlHostPath()),
					"kubeconfig":   h.fileExists(c.KubeconfigPath()),
				}
				want := map[string]bool{
					"kind cluster": ran(madeCluster),
					"registry":     ran(madeRegistry),
					"kubectl file": ran(madeFiles),
					"kubeconfig":   ran(madeCluster),
				}
				for k, v := range want {
					if left[k] != v {
						t.Errorf("%s left: %v, want %v\n%v", k, left[k], v, err)
					}
				}
				h.checkPFsHome("after the failure")
				msg := err.Error()
				switch {
				case !ran(madeCluster):
					if !strings.Contains(msg, "Nothing was changed") {
						t.Errorf("a failure before the cluster exists must say nothing was changed:\n%s", msg)
					}
				default:
					if !strings.Contains(msg, "Left for inspection (created by this run): ") || !strings.Contains(msg, "`make cluster-down` (CLUSTER_NAME=sriov) removes what is left") {
						t.Errorf("the error does not say what is left:\n%s", msg)
					}
				}
				if ran(madeNICs) && !strings.Contains(msg, "Undone, in this order: SR-IOV PFs of cluster sriov (given back to the host)") {
					t.Errorf("the error does not say the PFs were given back:\n%s", msg)
				}
				h.down("after the failure", before)
			})
		}
	}
}

// An interrupt before and after every step undoes all this run created,
// in reverse order, and leaves the host as it was.
func TestUpInterruptedAtEveryStep(t *testing.T) {
	steps := newHarness(t, newWorld(), nil).p.steps()
	for i, s := range steps {
		for _, after := range []bool{false, true} {
			t.Run(fmt.Sprintf("step %d %q after=%v", i, s.name, after), func(t *testing.T) {
				h := newHarness(t, hostWithOtherCluster(), nil)
				before := h.snapshot()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				n := 0
				h.p.deps.hook = func(ctx context.Context, _ string, a bool) error {
					if !a {
						n++
					}
					if n-1 == i && a == after {
						cancel()
						if !a {
							return ctx.Err()
						}
					}
					return nil
				}
				err := h.p.Up(ctx)
				if i == len(steps)-1 && after {
					// Interrupted once everything is done: the cluster is up.
					if err != nil {
						t.Fatalf("cluster-up: %v", err)
					}
					h.down("after cluster-up", before)
					return
				}
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("cluster-up: %v, want it interrupted", err)
				}
				if got := h.snapshot(); got != before {
					t.Errorf("after the interrupt the host is\n%s\nwant, as before,\n%s\n%v\n%s", got, before, err, h.log)
				}
				if strings.Contains(err.Error(), "Left for inspection") {
					t.Errorf("an interrupt must leave nothing:\n%v", err)
				}
				h.checkPFsHome("after the interrupt")
				h.down("after the interrupt", before)
			})
		}
	}
}

// Failures inside the boundaries, half-way through a step: what the step
// had made by then is undone or left, never lost.
func TestUpFailingHalfWay(t *testing.T) {
	for _, tc := range []struct {
		op   string
		left []string // containers left for inspection
	}{
		// kind keeps the nodes of a failed create (--retain).
		{"kind create", []string{"sriov-control-plane", "sriov-worker", "sriov-worker2"}},
		// The registry container exists, its start failed.
		{"registry run", []string{"sriov-control-plane", "sriov-registry"}},
		// The SR-IOV manager failed and could not roll back: the PFs are
		// in the nodes and the ledger says so.
		{"nics up no rollback", []string{"sriov-control-plane", "sriov-registry"}},
		{"nics up", []string{"sriov-control-plane", "sriov-registry"}},
	} {
		t.Run(tc.op, func(t *testing.T) {
			h := newHarness(t, hostWithOtherCluster(), nil)
			before := h.snapshot()
			h.w.fail[tc.op] = errInjected
			err := h.p.Up(context.Background())
			if !errors.Is(err, errInjected) {
				t.Fatalf("cluster-up: %v, want the injected failure", err)
			}
			for _, c := range tc.left {
				if !h.exists(c) {
					t.Errorf("container %s is not left for inspection:\n%v", c, err)
				}
			}
			h.checkPFsHome("after the failure")
			h.down("after the failure", before)
		})
	}
}

// A registry that was running before the run is reused, and an interrupted
// cluster-up leaves it running.
func TestInterruptLeavesAReusedRegistry(t *testing.T) {
	w := hostWithOtherCluster()
	h := newHarness(t, w, nil)
	c := h.p.cfg()
	if _, err := localregistry.Ensure(context.Background(), fakeEngine{w}, registrySpec(c), nil); err != nil {
		t.Fatal(err)
	}
	before := h.snapshot()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.p.deps.hook = func(ctx context.Context, name string, after bool) error {
		if strings.HasPrefix(name, "Moving SR-IOV PFs") && after {
			cancel()
		}
		return nil
	}
	err := h.p.Up(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cluster-up: %v, want it interrupted", err)
	}
	if got := h.snapshot(); got != before {
		t.Errorf("after the interrupt the host is\n%s\nwant\n%s", got, before)
	}
	for _, want := range []string{
		"Undone, in this order: SR-IOV PFs of cluster sriov (given back to the host), kubectl and config-provider files",
		"Nothing this run created is left.",
		"Left as it was (there before this run): registry sriov-registry.",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q:\n%v", want, err)
		}
	}
}

// With CI=true a failed cluster delete is reported and cluster-down goes
// on; without, it stops with the PFs already home, and a second run
// finishes.
func TestDownWhenTheDeleteFails(t *testing.T) {
	for _, ci := range []string{"true", "false"} {
		t.Run("CI="+ci, func(t *testing.T) {
			h := newHarness(t, hostWithOtherCluster(), map[string]string{"CI": ci})
			before := h.snapshot()
			if err := h.p.Up(context.Background()); err != nil {
				t.Fatal(err)
			}
			h.w.fail["kind delete"] = errInjected
			err := h.p.Down(context.Background())
			if ci == "true" {
				if err != nil {
					t.Fatalf("CI=true cluster-down: %v", err)
				}
				if !strings.Contains(h.log.String(), "CI=true: going on despite the failed delete") {
					t.Errorf("the failed delete is not reported:\n%s", h.log)
				}
				// The nodes are left (the delete failed), every PF is home.
				h.checkPFsHome("CI=true cluster-down")
				h.down("after fixing the delete", before)
				return
			}
			if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "run `make cluster-down` again") {
				t.Fatalf("cluster-down: %v, want the failed delete and what to do", err)
			}
			h.w.mu.Lock()
			for _, p := range h.w.pfs[:3] {
				if p.node != "" {
					t.Errorf("PF %s still in %s after a failed delete", p.name, p.node)
				}
			}
			h.w.mu.Unlock()
			h.down("after fixing the delete", before)
			h.checkPFsHome("after the second cluster-down")
		})
	}
}

// cgroup v1 hierarchies that kind nodes left: cluster-up refuses to start
// on them when no kind node runs (new nodes would fail), and cluster-down
// removes them once no kind node runs.
func TestHiddenCgroups(t *testing.T) {
	left := []cgroupv1.Hierarchy{{ID: 9, Controllers: []string{"hugetlb"}, Cgroups: 36}}
	w := newWorld("pf0", "pf1")
	w.cgroups = left
	h := newHarness(t, w, nil)
	err := h.p.Up(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cgroup v1 hierarchies hugetlb (36 cgroups) are left") || !strings.Contains(err.Error(), "Nothing was changed") {
		t.Fatalf("cluster-up on leftovers: %v", err)
	}
	if err := h.p.Down(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(w.cgroups) != 0 || !strings.Contains(h.log.String(), "removed cgroup v1 hierarchies that kind nodes left: hugetlb (36 cgroups)") {
		t.Fatalf("cluster-down left %v:\n%s", w.cgroups, h.log)
	}
	if err := h.p.Up(context.Background()); err != nil {
		t.Fatalf("cluster-up once they are gone: %v", err)
	}

	// Another cluster's node runs: cluster-down keeps them, cluster-up
	// only warns.
	w2 := hostWithOtherCluster()
	w2.cgroups = left
	h2 := newHarness(t, w2, nil)
	if err := h2.p.Up(context.Background()); err != nil {
		t.Fatalf("cluster-up with another kind cluster running: %v", err)
	}
	if !strings.Contains(h2.log.String(), "warning: cgroup v1 hierarchies hugetlb (36 cgroups)") {
		t.Errorf("no warning:\n%s", h2.log)
	}
	if err := h2.p.Down(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(w2.cgroups) != 1 || !strings.Contains(h2.log.String(), "keeping cgroup v1 hierarchies") {
		t.Errorf("cluster-down removed hierarchies another cluster's nodes may use (%v):\n%s", w2.cgroups, h2.log)
	}
}

// A failed kind create says why the node did not start: the last lines of
// each node's kubelet, not only kubeadm's exit status.
func TestFailedCreateShowsTheKubelet(t *testing.T) {
	w := hostWithOtherCluster()
	w.kubeletLog = map[string]string{
		"sriov-control-plane": "I1201 kubelet starting\nE1201 failed to run Kubelet: invalid configuration: cgroup-root [\"kubelet\"] doesn't exist",
		"sriov-worker":        "-- No entries --",
	}
	w.fail["kind create"] = errors.New("failed to init node with kubeadm: exit status 1")
	h := newHarness(t, w, nil)
	err := h.p.Up(context.Background())
	if err == nil {
		t.Fatal("cluster-up succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"the kubelet of sriov-control-plane said last:", `cgroup-root ["kubelet"] doesn't exist`} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "the kubelet of sriov-worker said") {
		t.Errorf("a node whose kubelet never ran is shown:\n%s", msg)
	}
}

// A kind create that fails before any node exists (the node image cannot
// be pulled, say) leaves nothing behind, and the message says so: no
// "left for inspection" of a cluster that never was (issue 21).
func TestFailedCreateBeforeTheNodesLeavesNothing(t *testing.T) {
	w := hostWithOtherCluster()
	w.fail["kind create before the nodes"] = errors.New(`failed to pull image "example.com/node:v1"`)
	h := newHarness(t, w, nil)
	before := h.snapshot()
	err := h.p.Up(context.Background())
	if err == nil {
		t.Fatal("cluster-up succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, "Left for inspection") || strings.Contains(msg, "Undone") {
		t.Errorf("the message names a cluster that was never created:\n%s", msg)
	}
	if !strings.Contains(msg, "Nothing this run created is left.") {
		t.Errorf("the message does not say nothing is left:\n%s", msg)
	}
	if got := h.snapshot(); got != before {
		t.Errorf("the host changed:\n%s\nwas\n%s", got, before)
	}
}

// Interrupted while a `docker run` is under way (kind's for the nodes,
// ours for the registry): the engine goes on creating the container after
// the signal ended its client, and it cannot be removed until the engine
// is done. The interrupt still leaves nothing; a failure leaves it for
// inspection, and cluster-down removes it.
func TestInterruptedRunRemovesContainersStillBeingCreated(t *testing.T) {
	for _, tc := range []struct {
		fail, at, waits string
	}{
		{"kind create cut short", "Creating kind cluster", "sriov-control-plane, sriov-worker, sriov-worker2"},
		// The registry starts in the background: the signal comes at
		// the next step.
		{"registry run cut short", "Configuring nodes", "sriov-registry"},
	} {
		for _, down := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, by cluster-down=%v", tc.fail, down), func(t *testing.T) {
				w := hostWithOtherCluster()
				w.fail[tc.fail] = errors.New(`command "docker run ..." failed with error: exit status 143`)
				h := newHarness(t, w, nil)
				before := h.snapshot()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				h.p.deps.hook = func(_ context.Context, step string, after bool) error {
					if strings.HasPrefix(step, tc.at) && !after && !down {
						cancel() // the signal
					}
					return nil
				}
				err := h.p.Up(ctx)
				if err == nil {
					t.Fatal("cluster-up succeeded")
				}
				if down {
					// A failure (not an interrupt) keeps what it made for
					// inspection; cluster-down must remove it once the
					// engine has finished creating it.
					if !h.exists(strings.Split(tc.waits, ", ")[0]) {
						t.Fatalf("the failed run's containers are not there to remove:\n%s", h.snapshot())
					}
					h.down("after the cut-short run", before)
					return
				}
				if !strings.HasPrefix(err.Error(), "interrupted: ") || !strings.Contains(err.Error(), "Nothing this run created is left.") {
					t.Fatalf("cluster-up: %v, want it interrupted and everything undone", err)
				}
				if got := h.snapshot(); got != before {
					t.Errorf("after the interrupt the host is\n%s\nwant, as before,\n%s\n%v\n%s", got, before, err, h.log)
				}
				if !strings.Contains(h.log.String(), "waiting for the engine to finish creating "+tc.waits) {
					t.Errorf("no line says what is waited for (%s):\n%s", tc.waits, h.log)
				}
				h.down("after the interrupt", before)
			})
		}
	}
}

// A KUBEVIRTCI_CONFIG_PATH that cannot be written is refused by name at the
// host check, before anything is created (it failed inside kind create).
func TestUnwritableConfigPathRefusedFirst(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, hostWithOtherCluster(), map[string]string{config.EnvConfigPath: filepath.Join(file, "nope")})
	before := h.snapshot()
	err := h.p.Up(context.Background())
	if err == nil || !strings.Contains(err.Error(), "KUBEVIRTCI_CONFIG_PATH: the cluster's files cannot be written") || !strings.Contains(err.Error(), "Nothing was changed") {
		t.Fatalf("cluster-up: %v", err)
	}
	if strings.Contains(h.log.String(), "Creating kind cluster") {
		t.Errorf("kind create ran:\n%s", h.log)
	}
	if got := h.snapshot(); got != before {
		t.Errorf("the host changed:\n%s\nwas\n%s", got, before)
	}
	// A folder still to be made is made and removed again by the check.
	fresh := filepath.Join(t.TempDir(), "x", "y")
	if err := checkFolder(fresh); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(fresh)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the check left %s behind (%v)", filepath.Dir(fresh), err)
	}
}

// Two cluster-ups of one cluster started together (two terminals, a
// retried CI job): the second waits for the first, saying so, and then
// answers as cluster-up on a live cluster does; nothing of the first is
// touched (issue 21: the second failed on docker's name conflict and
// reported the first one's cluster as its own leftover).
func TestSecondUpOfTheSameClusterWaits(t *testing.T) {
	w := hostWithOtherCluster()
	dirs := map[string]string{
		config.EnvConfigPath:    filepath.Join(t.TempDir(), "_ci-configs"),
		config.EnvSRIOVStateDir: filepath.Join(t.TempDir(), "sriov-state"),
	}
	first, second := newHarness(t, w, dirs), newHarness(t, w, dirs)
	atCreate, proceed, waiting := make(chan struct{}), make(chan struct{}), make(chan struct{})
	first.p.deps.hook = func(ctx context.Context, step string, after bool) error {
		if strings.HasPrefix(step, "Creating kind cluster") && !after {
			close(atCreate)
			<-proceed
		}
		return nil
	}
	second.p.deps.lockCluster = func(ctx context.Context) (func(), error) {
		c := second.p.cfg()
		return sriov.LockCluster(ctx, c.SRIOVStateDir, c.ClusterName, time.Minute, func(holder string) {
			if !strings.Contains(holder, "cluster-up of sriov") {
				t.Errorf("the lock names its holder %q", holder)
			}
			close(waiting)
		})
	}
	firstErr := make(chan error, 1)
	go func() { firstErr <- first.p.Up(context.Background()) }()
	<-atCreate
	secondErr := make(chan error, 1)
	go func() { secondErr <- second.p.Up(context.Background()) }()
	select {
	case <-waiting:
	case err := <-secondErr:
		t.Fatalf("the second cluster-up did not wait: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the second cluster-up neither waited nor ended")
	}
	close(proceed)
	if err := <-firstErr; err != nil {
		t.Fatalf("first cluster-up: %v\n%s", err, first.log)
	}
	up := first.snapshot()
	err := <-secondErr
	var already *alreadyUpError
	if !errors.As(err, &already) {
		t.Fatalf("second cluster-up: %v, want the cluster is already up", err)
	}
	if got := first.snapshot(); got != up {
		t.Errorf("the second cluster-up changed the host:\n%s\nwas\n%s", got, up)
	}
}
