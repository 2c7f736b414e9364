package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/cgroupv1"
)

// boundaries are the step boundaries of cluster-up at which
// TestScenarioInterrupts may interrupt it: the signal goes out when the
// step's line appears (its start), or, for kind create, some seconds into
// it (during).
var boundaries = []struct {
	step   string // the start of the step's line, after "• "
	during bool   // signal 3 to 25 s after the step starts
}{
	// kind create runs in the background from its step on: the steps
	// up to "Waiting for kind create" are interrupted while it runs.
	{"Creating kind cluster", true},
	{"Waiting for kind to boot the nodes", false},
	{"Writing kubectl and config-provider files", false},
	{"Starting registry", false},
	{"Configuring nodes", false},
	{"Moving SR-IOV PFs", false},
	{"Preparing the SR-IOV nodes", false},
	{"Waiting for the API server", false},
	{"Waiting for the nodes' configuration", false},
	{"Waiting for kind create", false},
	{"Labelling the SR-IOV nodes", false},
	{"deploy multus", false},
	{"Node roles", false},
	{"Waiting for the control plane", false},
	{"wait for the multus", false},
}

// EnvInterruptSeed picks TestScenarioInterrupts' boundaries (a number);
// unset, a new seed is drawn and logged.
const EnvInterruptSeed = "KUBEVIRTCI_E2E_INTERRUPT_SEED"

// TestScenarioInterrupts interrupts `make cluster-up` once with SIGINT
// (Ctrl-C in a terminal) and once with SIGTERM (a CI job cancelled), each
// at a step boundary drawn at random (the seed is logged; every boundary is
// covered over a few runs), both signals to the whole process group, as a
// terminal and a job runner send them. Right after cluster-up exits, before
// anything else runs, the host must be exactly as before: no container,
// network endpoint, ledger, file or cgroup of the cluster, every PF home
// with its name, MAC, MTU, state and VF count. Then `make cluster-down`
// must succeed and change nothing.
func TestScenarioInterrupts(t *testing.T) {
	requireE2E(t)
	requireNoCluster(t, "sriov")
	seed := time.Now().UnixNano()
	if s := os.Getenv(EnvInterruptSeed); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: not a number", EnvInterruptSeed, s)
		}
	}
	rng := rand.New(rand.NewSource(seed))
	picks := rng.Perm(len(boundaries))[:2]
	t.Logf("interrupt boundaries drawn with seed %d (%s=%d reproduces them): SIGINT at %q, SIGTERM at %q",
		seed, EnvInterruptSeed, seed, boundaries[picks[0]].step, boundaries[picks[1]].step)

	pfs := newPFSet(t, "e2eipf", 0xa8, 2)
	stateDir := filepath.Join(t.TempDir(), "sriov-state")
	for i, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		b := boundaries[picks[i]]
		ok := t.Run(fmt.Sprintf("%v at %s", sig, b.step), func(t *testing.T) {
			c := newCluster(t, clusterOpts{nodes: 3, pfs: pfs, stateDir: stateDir})
			before := hostSnapshot(t, c)
			hit := make(chan struct{}, 1)
			t.Logf("%s: make cluster-up   (%s)", c.name, c.settings())
			p := c.start("cluster-up", func(line string) {
				if strings.Contains(line, "• "+b.step) {
					select {
					case hit <- struct{}{}:
					default:
					}
				}
			})
			select {
			case <-hit:
			case <-time.After(upTimeout):
				t.Fatalf("cluster-up never reached %q:\n%s", b.step, p.tail(30))
			}
			if b.during {
				d := time.Duration(3+rng.Intn(23)) * time.Second
				t.Logf("%q started; sending %v in %s", b.step, sig, d)
				time.Sleep(d)
			}
			if p.exited() {
				t.Fatalf("cluster-up ended before the signal:\n%s", p.tail(30))
			}
			t.Logf("sending %v to cluster-up's process group at %q", sig, b.step)
			if err := p.signal(sig); err != nil {
				t.Fatal(err)
			}
			err := p.wait(downTimeout)
			if err == nil {
				t.Fatalf("cluster-up exited 0 after %v:\n%s", sig, p.tail(30))
			}
			if err := p.waitGroupGone(time.Minute); err != nil {
				t.Fatal(err)
			}
			out := p.output()
			if !strings.Contains(out, "interrupted") || !strings.Contains(out, "Nothing this run created is left") && !strings.Contains(out, "Nothing was changed") {
				t.Errorf("cluster-up's last words after %v do not say it undid everything:\n%s", sig, tail(out, 20))
			}
			// Before anything else: the host as before.
			if after := hostSnapshot(t, c); after != before {
				t.Errorf("after %v at %q the host is not as before:\nbefore:\n%s\nafter:\n%s", sig, b.step, before, after)
			}
			pfs.checkBack(t)
			// Then cluster-down succeeds and changes nothing.
			c.down()
			if after := hostSnapshot(t, c); after != before {
				t.Errorf("cluster-down after the interrupt changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			pfs.checkBack(t)
		})
		if !ok {
			break
		}
	}
}

// hostSnapshot is what a cluster can leave on the host, as text: its
// containers (nodes and registry), their endpoints on kind's network, the
// volumes no container uses, the files in its KUBEVIRTCI_CONFIG_PATH and
// its SR-IOV state directory (the lock files, which stay by design, left
// out), the hidden cgroup v1 hierarchies, and the host's links.
func hostSnapshot(t *testing.T, c *cluster) string {
	t.Helper()
	var b strings.Builder
	ctx := context.Background()
	ours := func(n string) bool { return n == c.registry() || strings.HasPrefix(n, c.name+"-") }
	var names []string
	for _, n := range strings.Fields(dockerT(t, "ps", "-a", "--format", "{{.Names}}")) {
		if ours(n) {
			names = append(names, n)
		}
	}
	for _, n := range strings.Fields(dockerT(t, "ps", "-a", "--format", "{{.Names}}", "--filter", "label=io.x-k8s.kind.cluster="+c.name)) {
		names = append(names, "kind-labelled:"+n)
	}
	sort.Strings(names)
	fmt.Fprintf(&b, "containers: %v\n", names)
	if out, err := docker(ctx, "network", "inspect", "kind", "--format", "{{range .Containers}}{{.Name}} {{end}}"); err == nil {
		var eps []string
		for _, n := range strings.Fields(out) {
			if ours(n) {
				eps = append(eps, n)
			}
		}
		sort.Strings(eps)
		fmt.Fprintf(&b, "kind network endpoints: %v\n", eps)
	}
	// A node's /var is an anonymous volume: one left by a removal
	// without --volumes is about a gigabyte nobody sees.
	vols := strings.Fields(dockerT(t, "volume", "ls", "--quiet", "--filter", "dangling=true"))
	sort.Strings(vols)
	fmt.Fprintf(&b, "volumes in no container: %v\n", vols)
	for _, dir := range []string{c.cfgPath, c.stateDir} {
		var files []string
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && p != dir && !strings.Contains(d.Name(), "lock") {
				files = append(files, strings.TrimPrefix(p, dir+"/"))
			}
			return nil
		})
		fmt.Fprintf(&b, "files in %s: %v\n", dir, files)
	}
	hs, err := cgroupv1.Find("/proc")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "hidden cgroup v1 hierarchies: %d\n", len(hs))
	links, err := hostLinks()
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(links))
	for n := range links {
		keys = append(keys, n)
	}
	sort.Strings(keys)
	for _, n := range keys {
		// Containers of other tests and builds come and go with their
		// veths; the PFs, bridges and the rest stay.
		if !strings.HasPrefix(n, "veth") {
			fmt.Fprintf(&b, "link %s\n", links[n])
		}
	}
	return b.String()
}
