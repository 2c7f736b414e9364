package e2e

import (
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/config"
)

// TestScenarioTwo runs clusters sriov and sriov2 (2 nodes each, two PFs
// per worker, four PFs in all) side by side: first created one right after
// the other, then, after both are gone, started at the same moment. Each
// round checks that both clusters answer at once, their registries are on
// 5000 and 5001, the PFs are split with no overlap, and that after both
// are torn down every PF is back.
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
	}{{"one after the other", false}, {"at the same moment", true}} {
		ok := t.Run(round.name, func(t *testing.T) {
			a := newCluster(t, clusterOpts{name: "sriov", nodes: 2, pfs: pfs, stateDir: stateDir, pfCountPerNode: 2})
			b := newCluster(t, clusterOpts{name: "sriov2", nodes: 2, pfs: pfs, stateDir: stateDir, pfCountPerNode: 2})
			if round.parallel {
				both(t, "cluster-up", a, b)
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
