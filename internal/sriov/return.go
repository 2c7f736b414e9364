package sriov

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Return gives back every PF in the cluster's ledger: netdev moved back to
// the host namespace (or, when its node is gone, awaited until the kernel
// hands it back, at most opts.ReturnWait), found by PCI address, renamed to
// its original name, MTU, MAC, alias and up/down restored, and verified;
// then, once every netdev is home, each PF's VF count and VF drivers
// restored. The ledger is removed only when every PF is
// verified back; otherwise the error names the PFs still missing and Return
// can be run again. Without a ledger, Return does nothing.
//
// Call it before deleting the nodes: a PF in a live node comes back at
// once, while one in a deleted node waits for the kernel.
func (m *Manager) Return(ctx context.Context, nodes Nodes) error {
	return m.giveBackLedger(ctx, nodes, true)
}

// ReturnNetdevs brings every PF's netdev home and restores it, as Return
// does, but leaves the VF counts and the ledger as they are: cluster-down
// calls it before it deletes the nodes (a PF in a live node comes back at
// once), then Return once they are gone, when no VM in a node can hold a
// VF through vfio any more (a VF in use can block the reset of the count).
func (m *Manager) ReturnNetdevs(ctx context.Context, nodes Nodes) error {
	return m.giveBackLedger(ctx, nodes, false)
}

func (m *Manager) giveBackLedger(ctx context.Context, nodes Nodes, vfs bool) error {
	lk, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer lk.release()
	l, err := ReadLedger(m.opts.StateDir, m.opts.Cluster)
	if err != nil || l == nil {
		return err
	}
	if l.SysfsRoot != m.opts.SysfsRoot {
		return fmt.Errorf("the SR-IOV ledger %s was written with SRIOV_SYSFS_ROOT=%s, now it is %s: run cluster-down with the same setting",
			LedgerPath(m.opts.StateDir, m.opts.Cluster), l.SysfsRoot, m.opts.SysfsRoot)
	}
	host, err := m.net.Host()
	if err != nil {
		return err
	}
	defer host.Close()
	return m.giveBackPFs(ctx, host, nodes, nil, l, vfs)
}

// pfReturn is the progress of one PF within a giveBack.
type pfReturn struct {
	netdev bool  // the netdev is back and restored
	err    error // a failure that waiting will not fix
}

// giveBack returns the ledger's PFs. held are namespaces already open (Up's
// rollback), tried before looking nodes up: the PFs are there even if the
// node's process died meanwhile, since the open handle keeps it alive.
func (m *Manager) giveBack(ctx context.Context, host netNamespace, nodes Nodes, held map[string]netNamespace, l *Ledger) error {
	return m.giveBackPFs(ctx, host, nodes, held, l, true)
}

// giveBackPFs is giveBack; without vfs it leaves the VF counts and keeps
// the ledger (its PFs keep their state) for the Return that follows.
func (m *Manager) giveBackPFs(ctx context.Context, host netNamespace, nodes Nodes, held map[string]netNamespace, l *Ledger, vfs bool) error {
	nodeNS := map[string]netNamespace{}
	nodeErr := map[string]error{}
	defer func() {
		for _, ns := range nodeNS {
			ns.Close()
		}
	}()
	openNode := func(node string) (netNamespace, error) {
		if ns, ok := held[node]; ok {
			return ns, nil
		}
		if ns, ok := nodeNS[node]; ok {
			return ns, nil
		}
		if err, ok := nodeErr[node]; ok {
			return nil, err
		}
		var pid int
		err := errors.New("no way to find node containers")
		if nodes != nil {
			pid, err = nodes.PID(ctx, node)
		}
		if err == nil && pid <= 0 {
			err = errors.New("container is not running")
		}
		var ns netNamespace
		if err == nil {
			ns, err = m.net.Node(pid)
		}
		if err != nil {
			nodeErr[node] = err
			return nil, err
		}
		nodeNS[node] = ns
		return ns, nil
	}

	progress := make([]pfReturn, len(l.PFs))
	// step advances every PF not yet back as far as it can go now and
	// reports whether some are still waiting for the kernel. VF counts are
	// restored only once no netdev is missing (or, with final, for those
	// that are back): a VF netdev that its driver creates takes the first
	// free ethN name, which may be the name of a PF still in a node, and the
	// kernel then refuses to move that PF home (seen with igbvf).
	step := func(final bool) (waiting bool) {
		for i := range l.PFs {
			p, pr := &l.PFs[i], &progress[i]
			if p.State == StateReturned || pr.err != nil || pr.netdev {
				continue
			}
			done, err := m.returnNetdev(host, openNode, p)
			if err != nil {
				pr.err = err
				continue
			}
			pr.netdev = done
			waiting = waiting || !done
		}
		if (waiting && !final) || !vfs {
			return waiting
		}
		// PFs are independent PCI devices: their VF counts are restored
		// at the same time (a driver may take a while to tear VFs down:
		// igb sleeps 500 ms in it), then the ledger is written once.
		var wg sync.WaitGroup
		var ready []int
		for i := range l.PFs {
			p, pr := &l.PFs[i], &progress[i]
			if p.State == StateReturned || pr.err != nil || !pr.netdev {
				continue
			}
			ready = append(ready, i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				pr.err = m.resetVFs(ctx, p)
			}()
		}
		wg.Wait()
		changed := false
		for _, i := range ready {
			if progress[i].err == nil {
				l.PFs[i].State = StateReturned
				changed = true
				m.debugf("PF %s (%s) is back on the host", l.PFs[i].Name, l.PFs[i].PCI)
			}
		}
		if changed {
			if err := writeLedger(m.opts.StateDir, l); err != nil {
				for _, i := range ready {
					progress[i].err = err
				}
			}
		}
		return waiting
	}

	var waitErr error
	if step(false) {
		var names []string
		for i, p := range l.PFs {
			if !progress[i].netdev && progress[i].err == nil {
				names = append(names, p.Name)
			}
		}
		m.log.Infof("   waiting up to %s for the kernel to hand back PF(s) %s from node(s) that are gone", m.opts.ReturnWait, strings.Join(names, ", "))
		waitErr = poll(ctx, m.opts.ReturnWait, "PFs to come back to the host", func() (bool, error) {
			return !step(false), nil
		})
		if waitErr != nil {
			step(true) // the VFs of the PFs that are back
		}
	}

	var missing []string
	for i, p := range l.PFs {
		if p.State == StateReturned || (!vfs && progress[i].netdev) {
			continue
		}
		why := progress[i].err
		if why == nil {
			why = fmt.Errorf("not found in the host nor in node %s", p.Node)
			if err, ok := nodeErr[p.Node]; ok {
				why = fmt.Errorf("node %s is gone (%v) and the kernel has not handed the PF back to the host", p.Node, err)
			}
			if waitErr != nil {
				why = fmt.Errorf("%w; %v", why, waitErr)
			}
		}
		missing = append(missing, fmt.Sprintf("%s (%s): %v", p.Name, p.PCI, why))
	}
	if len(missing) == 0 {
		if !vfs {
			return nil
		}
		return removeLedger(m.opts.StateDir, l.Cluster)
	}
	if err := writeLedger(m.opts.StateDir, l); err != nil {
		missing = append(missing, err.Error())
	}
	return fmt.Errorf("%d of %d SR-IOV PFs are not back on the host; the ledger %s is kept, run cluster-down again:\n  %s",
		len(missing), len(l.PFs), LedgerPath(m.opts.StateDir, l.Cluster), strings.Join(missing, "\n  "))
}

// returnNetdev brings the PF's netdev to the host namespace if it is in its
// node, then restores and verifies it. done is false while it is nowhere
// to be seen (its node is gone and the kernel has not handed it back yet).
func (m *Manager) returnNetdev(host netNamespace, openNode func(string) (netNamespace, error), p *LedgerPF) (done bool, err error) {
	links, err := host.Links()
	if err != nil {
		return false, err
	}
	l, ok, err := findPF(links, p)
	if err != nil {
		return false, err
	}
	if !ok {
		ns, nerr := openNode(p.Node)
		if nerr != nil {
			return false, nil // the node is gone: wait for the kernel
		}
		nlinks, lerr := ns.Links()
		if lerr != nil {
			return false, nil // the namespace is being torn down
		}
		nl, found, err := findPF(nlinks, p)
		if err != nil {
			return false, err
		}
		if !found {
			return false, nil
		}
		start := time.Now()
		if err := ns.MoveTo(nl.Index, host); err != nil {
			return false, fmt.Errorf("move PF %s back from node %s: %w", p.Name, p.Node, err)
		}
		if links, err = host.Links(); err != nil {
			return false, err
		}
		if l, ok, err = findPF(links, p); err != nil {
			return false, err
		}
		if !ok {
			return false, fmt.Errorf("PF %s was moved back from node %s but is not in the host namespace", p.Name, p.Node)
		}
		m.debugf("PF %s moved back from node %s in %s", p.Name, p.Node, time.Since(start).Round(time.Microsecond))
	}
	if err := restoreLink(host, links, l, p); err != nil {
		return false, fmt.Errorf("restore PF %s (%s, now %s): %w", p.Name, p.PCI, l.Name, err)
	}
	return true, nil
}

// restoreLink puts back name, MTU, MAC, up/down and alias, then verifies.
// The alias goes last: until it is restored, the marker finds the PF again
// if this is interrupted.
func restoreLink(host netNamespace, links []linkInfo, l linkInfo, p *LedgerPF) error {
	up := l.Up
	setDown := func() error {
		if !up {
			return nil
		}
		up = false
		return host.SetUp(l.Index, false)
	}
	if l.Name != p.Name {
		if other, ok := linkByName(links, p.Name); ok && other.Index != l.Index {
			return fmt.Errorf("cannot rename it back to %s: another link (index %d) has that name now", p.Name, other.Index)
		}
		if err := setDown(); err != nil {
			return err
		}
		if err := host.SetName(l.Index, p.Name); err != nil {
			return err
		}
	}
	if p.MTU > 0 && l.MTU != p.MTU {
		if err := host.SetMTU(l.Index, p.MTU); err != nil {
			return err
		}
	}
	if p.MAC != "" && !strings.EqualFold(l.MAC, p.MAC) {
		if err := setDown(); err != nil {
			return err
		}
		if err := host.SetMAC(l.Index, p.MAC); err != nil {
			return err
		}
	}
	if up != p.Up {
		if err := host.SetUp(l.Index, p.Up); err != nil {
			return err
		}
	}
	if l.Alias != p.Alias {
		if err := host.SetAlias(l.Index, p.Alias); err != nil {
			return err
		}
	}
	links, err := host.Links()
	if err != nil {
		return err
	}
	got, ok := linkByName(links, p.Name)
	switch {
	case !ok || got.Index != l.Index:
		return fmt.Errorf("verify: no link %s with index %d", p.Name, l.Index)
	case got.MTU != p.MTU && p.MTU > 0:
		return fmt.Errorf("verify: MTU is %d, want %d", got.MTU, p.MTU)
	case p.MAC != "" && !strings.EqualFold(got.MAC, p.MAC):
		return fmt.Errorf("verify: MAC is %s, want %s", got.MAC, p.MAC)
	case got.Up != p.Up:
		return fmt.Errorf("verify: up is %t, want %t", got.Up, p.Up)
	case got.Alias != p.Alias:
		return fmt.Errorf("verify: alias is %q, want %q", got.Alias, p.Alias)
	}
	return nil
}
