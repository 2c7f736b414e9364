package e2e

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestScenarioOne brings up one 3-node cluster (two workers) with two PFs
// per worker out of five candidates, one of them blacklisted, and checks
// everything a user relies on, then tears it down and checks that nothing
// is left and every PF is back. One cluster serves every check: creating
// one takes minutes on a small machine.
func TestScenarioOne(t *testing.T) {
	requireE2E(t)
	requireNoCluster(t, "sriov")
	pfs := newPFSet(t, "e2eapf", 0xa1, 5)
	blacklisted := pfs.names[2]
	// "e2eapf" is a prefix of every PF name: the old substring match would
	// have blacklisted all of them; exact names blacklist only one.
	blacklist := "e2eapf, " + blacklisted
	const vfs = 3
	c := newCluster(t, clusterOpts{
		nodes:          3,
		pfs:            pfs,
		stateDir:       filepath.Join(t.TempDir(), "sriov-state"),
		pfCountPerNode: 2,
		blacklist:      blacklist,
		vfs:            vfs,
	})
	runID := buildHelloImage(t)

	c.up()

	var byNode map[string][]string
	var moved []string
	t.Run("PFs", func(t *testing.T) {
		byNode = pfs.checkHeld(t, c, 2)
		for _, w := range c.workers() {
			moved = append(moved, byNode[w]...)
		}
		sort.Strings(moved)
		if len(moved) != 4 || contains(moved, blacklisted) {
			t.Errorf("PFs moved: %v; want the 4 that are not blacklisted (%s)", moved, blacklisted)
		}
		pfs.checkOnHostOnly(t, blacklisted, c.nodeNames())
		for _, pf := range moved {
			pfs.checkVFs(t, pf, vfs)
		}
	})
	t.Run("README get nodes", func(t *testing.T) { checkGetNodes(t, c) })
	t.Run("README component pods", func(t *testing.T) { checkComponentPods(t, c, c.workers()) })
	t.Run("images unpacked", func(t *testing.T) { checkImagesUnpacked(t, c) })
	t.Run("layers outside /var", func(t *testing.T) { checkLayersOutsideVar(t, c) })
	t.Run("components at work", func(t *testing.T) { checkComponentsWork(t, c, c.workers()) })
	t.Run("node labels and taints", func(t *testing.T) { checkNodes(t, c, c.workers()) })
	t.Run("SR-IOV nodes prepared", func(t *testing.T) {
		for _, w := range c.workers() {
			checkNodePrepared(t, w)
		}
	})
	t.Run("no standard storage class", func(t *testing.T) { checkNoStandardStorageClass(t, c) })
	t.Run("etcd on tmpfs", func(t *testing.T) { checkEtcdOnTmpfs(t, c) })
	t.Run("files", func(t *testing.T) { checkFiles(t, c) })
	t.Run("registry", func(t *testing.T) { checkRegistry(t, c) })
	t.Run("device plugin config", func(t *testing.T) {
		if len(moved) == 0 {
			t.Skip("no PFs known (the PFs check failed)")
		}
		checkDevicePluginConfig(t, c, moved)
	})
	t.Run("status", func(t *testing.T) {
		out, _, err := c.run("status", downTimeout)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.workers() {
			if !strings.Contains(out, w) {
				t.Errorf("make status does not mention %s", w)
			}
			for _, pf := range byNode[w] {
				if !strings.Contains(out, pf) {
					t.Errorf("make status does not mention PF %s of %s", pf, w)
				}
			}
		}
	})
	t.Run("cluster-up again", func(t *testing.T) { checkUpAgain(t, c, pfs, 2) })
	syncUseAndDown(t, c, pfs, runID)
}
