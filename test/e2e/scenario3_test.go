package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/sriov"

	"k8s.io/apimachinery/pkg/util/wait"
)

// TestScenarioThree kills cluster-up after the NICs moved and checks that
// `make cluster-down` still returns everything: SIGKILL to the whole
// process group once the ledger shows every PF moved: nothing of the tool
// survives to clean up, the PFs stay in the node, and cluster-down must
// bring them back from the ledger. (SIGINT and SIGTERM, which the tool
// handles itself, are TestScenarioInterrupts'.)
func TestScenarioThree(t *testing.T) {
	requireE2E(t)
	requireNoCluster(t, "sriov")
	pfs := newPFSet(t, "e2ecpf", 0xc3, 2)
	stateDir := filepath.Join(t.TempDir(), "sriov-state")
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		when sriov.PFState
	}{
		{"SIGKILL of the process group after the PFs moved", syscall.SIGKILL, sriov.StateMoved},
	} {
		ok := t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, clusterOpts{nodes: 2, pfs: pfs, stateDir: stateDir, pfCountPerNode: 2})
			t.Logf("%s: make cluster-up   (%s)", c.name, c.settings())
			p := c.start("cluster-up", nil)
			if err := waitLedgerState(c, p, len(pfs.names), tc.when); err != nil {
				// p.wait's error carries the tail of cluster-up's output:
				// why it ended early.
				t.Fatalf("%v\n%v", err, p.wait(upTimeout))
			}
			t.Logf("every PF is %s or further: sending %v to cluster-up's process group", tc.when, tc.sig)
			if err := p.signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			err := p.wait(downTimeout)
			if err == nil {
				t.Errorf("cluster-up exited 0 after %v", tc.sig)
			}
			t.Logf("cluster-up ended after the signal: %v", firstLine(err))
			if tc.sig == syscall.SIGINT {
				// Ctrl-C: the tool returns the PFs before it exits.
				t.Run("PFs back after Ctrl-C", func(t *testing.T) { pfs.checkBack(t) })
			} else if host, err := hostLinks(); err == nil {
				left := 0
				for _, n := range pfs.names {
					if _, ok := host[n]; !ok {
						left++
					}
				}
				t.Logf("after SIGKILL, %d of %d PFs are still in the node", left, len(pfs.names))
			}
			c.down()
			checkGone(t, c)
			pfs.checkBack(t)
		})
		if !ok {
			break
		}
	}
}

// stateRank orders the PF states of the ledger.
var stateRank = map[sriov.PFState]int{sriov.StatePlanned: 1, sriov.StateMoved: 2, sriov.StateConfigured: 3, sriov.StateReturned: 4}

// waitLedgerState polls the cluster's ledger until it lists n PFs, each at
// least in state want; it fails when cluster-up ends first.
func waitLedgerState(c *cluster, p *proc, n int, want sriov.PFState) error {
	ended := errors.New("cluster-up ended")
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, upTimeout, true, func(context.Context) (bool, error) {
		if p.exited() {
			return false, ended
		}
		l, err := sriov.ReadLedger(c.stateDir, c.name)
		if err != nil || l == nil || len(l.PFs) != n {
			return false, nil
		}
		for _, pf := range l.PFs {
			if stateRank[pf.State] < stateRank[want] {
				return false, nil
			}
		}
		return true, nil
	})
	switch {
	case errors.Is(err, ended):
		return fmt.Errorf("cluster-up ended before every PF was %s (exit: %v)", want, p.err)
	case err != nil:
		return fmt.Errorf("the ledger %s did not show %d PFs %s within %s", c.ledgerPath(), n, want, upTimeout)
	}
	return nil
}

func firstLine(err error) string {
	if err == nil {
		return "exit 0"
	}
	s := err.Error()
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}
