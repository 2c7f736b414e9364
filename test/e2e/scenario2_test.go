package e2e

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kubevirt/kubevirtci-go/internal/config"
)

// TestScenarioTwo runs clusters sriov and sriov2 (2 nodes each, two PFs
// per worker, four PFs in all) side by side, started at the same moment with
// their PF allocations made to compete for the host-wide lock (see
// upThroughTheLock); TestScenarioFour creates two clusters one after the
// other. It checks that both clusters answer at once,
// their registries are on 5000 and 5001, the PFs are split with no overlap,
// and that after both are torn down every PF is back.
func TestScenarioTwo(t *testing.T) {
	requireE2E(t)
	requireNoCluster(t, "sriov", "sriov2")
	pfs := newPFSet(t, "e2ebpf", 0xb2, 4)
	// One state directory for both: it is host-wide in real use (the
	// lock and the ledgers that keep clusters off each other's PFs).
	stateDir := filepath.Join(t.TempDir(), "sriov-state")
	for _, round := range []struct {
		name     string
		parallel bool
	}{
		// One after the other is TestScenarioFour's way (with the
		// defaults, from two clones).
		{"at the same moment", true},
	} {
		ok := t.Run(round.name, func(t *testing.T) {
			a := newCluster(t, clusterOpts{name: "sriov", nodes: 2, pfs: pfs, stateDir: stateDir, pfCountPerNode: 2})
			b := newCluster(t, clusterOpts{name: "sriov2", nodes: 2, pfs: pfs, stateDir: stateDir, pfCountPerNode: 2})
			if round.parallel {
				upThroughTheLock(t, stateDir, a, b)
			} else {
				a.up()
				b.up()
			}
			checkSideBySide(t, pfs, a, b)
			if round.parallel {
				both(t, "cluster-down", a, b)
			} else {
				a.down()
				b.down()
			}
			checkGone(t, a)
			checkGone(t, b)
			pfs.checkBack(t)
		})
		if !ok {
			break
		}
	}
}

// both runs the same make target for two clusters started at the same
// moment and fails the test if either fails.
func both(t *testing.T, target string, a, b *cluster) {
	t.Helper()
	timeout := upTimeout
	if target == "cluster-down" {
		timeout = downTimeout
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	durs := make([]time.Duration, 2)
	for i, c := range []*cluster{a, b} {
		c.t.Logf("%s: make %s   (%s)", c.name, target, c.settings())
		p := c.start(target, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.wait(timeout)
			durs[i] = p.duration()
		}()
	}
	wg.Wait()
	for i, c := range []*cluster{a, b} {
		if errs[i] != nil {
			t.Errorf("%s: make %s (started together with the other cluster's) failed after %s: %v", c.name, target, durs[i].Round(time.Second), errs[i])
			continue
		}
		t.Logf("%s: make %s took %s (both started at once)", c.name, target, durs[i].Round(time.Second))
		if target == "cluster-down" {
			c.markDown()
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// upThroughTheLock starts both cluster-ups at once while the test holds the
// host-wide SR-IOV lock, waits until both have reached it (each says it is
// waiting for the lock, held by the test), then releases it: the two PF
// allocations start at the same instant and compete for the lock, which
// lets one through at a time. Both must succeed.
func upThroughTheLock(t *testing.T, stateDir string, a, b *cluster) {
	t.Helper()
	unlock := holdSRIOVLock(t, stateDir, "the e2e barrier")
	defer unlock()
	waiting := make(chan string, 4)
	cs := []*cluster{a, b}
	procs := make([]*proc, len(cs))
	for i, c := range cs {
		c.t.Logf("%s: make cluster-up   (%s)", c.name, c.settings())
		procs[i] = c.start("cluster-up", func(line string) {
			if strings.Contains(line, "waiting for the host-wide SR-IOV lock") {
				select {
				case waiting <- c.name + ":" + line:
				default:
				}
			}
		})
	}
	seen := map[string]string{}
	deadline := time.After(upTimeout)
	for len(seen) < len(cs) {
		select {
		case l := <-waiting:
			name, line, _ := strings.Cut(l, ":")
			seen[name] = strings.TrimSpace(line)
			if !strings.Contains(line, "held by the e2e barrier") {
				t.Errorf("%s waits for the lock held by someone else: %s", name, line)
			}
		case <-procs[0].done:
			t.Fatalf("%s: cluster-up ended before reaching the SR-IOV lock: %v\n%s", a.name, procs[0].err, procs[0].tail(20))
		case <-procs[1].done:
			t.Fatalf("%s: cluster-up ended before reaching the SR-IOV lock: %v\n%s", b.name, procs[1].err, procs[1].tail(20))
		case <-deadline:
			t.Fatalf("within %s, only %v reached the SR-IOV lock", upTimeout, seen)
		}
	}
	for n, l := range seen {
		t.Logf("lock contention, %s: %s", n, l)
	}
	unlock()
	for i, c := range cs {
		if err := procs[i].wait(upTimeout); err != nil {
			t.Errorf("%s: make cluster-up (released at the same instant as the other's) failed after %s: %v", c.name, procs[i].duration().Round(time.Second), err)
			continue
		}
		t.Logf("%s: make cluster-up took %s (both started at once, released from the lock together)", c.name, procs[i].duration().Round(time.Second))
	}
	if t.Failed() {
		t.FailNow()
	}
}

// holdSRIOVLock takes the host-wide SR-IOV lock of stateDir as the tool
// does (an flock of <stateDir>/lock, the holder written in it) and returns
// its release, which may be called more than once.
func holdSRIOVLock(t *testing.T, stateDir, who string) (unlock func()) {
	t.Helper()
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(stateDir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		t.Fatalf("taking the SR-IOV lock of %s: %v", stateDir, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(who+"\n"), 0)
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = f.Truncate(0)
			_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
			f.Close()
		})
	}
}

// checkSideBySide checks two running clusters: both answer, each has its
// own registry port, and their PFs do not overlap and cover the set.
func checkSideBySide(t *testing.T, pfs *pfSet, cs ...*cluster) {
	t.Helper()
	owner := map[string]string{}
	for _, c := range cs {
		t.Run(c.name, func(t *testing.T) {
			checkGetNodes(t, c)
			checkRegistry(t, c)
			byNode := pfs.checkHeld(t, c, 2)
			var mine []string
			for _, w := range c.workers() {
				for _, pf := range byNode[w] {
					if o, taken := owner[pf]; taken {
						t.Errorf("PF %s is held by both %s and %s", pf, o, c.name)
					}
					owner[pf] = c.name
					mine = append(mine, pf)
					pfs.checkVFs(t, pf, config.DefaultVFsCount)
				}
			}
			checkDevicePluginConfig(t, c, mine)
			sort.Strings(mine)
			t.Logf("%s holds %s", c.name, strings.Join(mine, ", "))
		})
	}
	if len(owner) != len(pfs.names) {
		t.Errorf("the clusters hold %d PFs together (%v), want all %d", len(owner), owner, len(pfs.names))
	}
	// Both at once, through their own kubectl.sh settings.
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.kubectl("get", "nodes", "-o", "name"); err != nil {
				t.Errorf("%s, queried at the same moment as the other: %v", c.name, err)
			}
		}()
	}
	wg.Wait()
}
