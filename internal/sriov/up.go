package sriov

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

func (m *Manager) lock(ctx context.Context) (*hostLock, error) {
	return acquireLock(ctx, m.opts.StateDir, "cluster "+m.opts.Cluster, m.opts.LockTimeout, func(holder string) {
		m.log.Infof("   waiting for the host-wide SR-IOV lock %s, held by %s", lockPath(m.opts.StateDir), holder)
	})
}

// Up lends PFs to the workers: under the host-wide lock it checks
// everything, allocates opts.PFCountPerNode PFs per worker, writes the
// ledger, moves each PF into its worker's network namespace and sets it up,
// then creates opts.VFCount VFs on every PF and binds them to vfio-pci.
//
// If anything fails after the ledger is written, Up gives back what it took
// (as Return does) before returning the error. If Up is interrupted or the
// process dies, Return brings everything back from the ledger.
func (m *Manager) Up(ctx context.Context, nodes Nodes, workers []string) ([]Assignment, error) {
	if err := checkWorkers(workers); err != nil {
		return nil, err
	}
	lk, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer lk.release()

	plan, err := m.Check(ctx, workers)
	if err != nil {
		return nil, fmt.Errorf("SR-IOV checks failed, nothing was changed:\n%w", err)
	}
	host, err := m.net.Host()
	if err != nil {
		return nil, err
	}
	defer host.Close()
	nodeNS := map[string]netNamespace{}
	defer func() {
		for _, ns := range nodeNS {
			ns.Close()
		}
	}()
	for _, w := range workers {
		pid, err := nodes.PID(ctx, w)
		if err == nil && pid <= 0 {
			err = errors.New("container is not running")
		}
		if err != nil {
			return nil, fmt.Errorf("node %s: no process to find its network namespace (nothing was changed): %w", w, err)
		}
		ns, err := m.net.Node(pid)
		if err != nil {
			return nil, fmt.Errorf("node %s (nothing was changed): %w", w, err)
		}
		nodeNS[w] = ns
	}

	now := time.Now().UTC()
	l := &Ledger{Version: LedgerVersion, Cluster: m.opts.Cluster, SysfsRoot: m.opts.SysfsRoot, VFCount: m.opts.VFCount, Created: now}
	for _, a := range plan.Assignments {
		for _, pf := range a.PFs {
			autoprobe, _ := m.sys.readString(filepath.Join(m.sys.pciDevice(pf.PCI), "sriov_drivers_autoprobe"))
			l.PFs = append(l.PFs, LedgerPF{
				PCI: pf.PCI, Node: a.Node, Name: pf.Name, MAC: pf.MAC, PermMAC: pf.PermMAC, MTU: pf.MTU, Up: pf.Up,
				Alias: pf.Alias, Driver: pf.Driver, TotalVFs: pf.TotalVFs, NumVFs: pf.NumVFs, Autoprobe: autoprobe,
				ParentDev: pf.ParentDev, Marker: marker(m.opts.Cluster, pf.PCI), State: StatePlanned,
			})
		}
	}
	if err := writeLedger(m.opts.StateDir, l); err != nil {
		return nil, fmt.Errorf("%w (nothing was changed)", err)
	}
	m.at("ledger-written")

	err = m.lend(ctx, host, nodeNS, l)
	if err == nil {
		err = m.checkNodes(ctx, nodes, nodeNS)
	}
	if err != nil {
		// Roll back even when ctx was cancelled (Ctrl-C): giving the PFs
		// back is what the user wants then.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.ReturnWait+4*m.opts.SysfsTimeout)
		defer cancel()
		if rerr := m.giveBack(rctx, host, nodes, nodeNS, l); rerr != nil {
			return nil, fmt.Errorf("%w\nrolling back failed too; run cluster-down to give the PFs back: %v", err, rerr)
		}
		return nil, fmt.Errorf("%w (rolled back: every PF is back on the host)", err)
	}
	return plan.Assignments, nil
}

// lend moves every PF of the ledger into its node, then configures VFs on
// every one, recording progress in the ledger.
func (m *Manager) lend(ctx context.Context, host netNamespace, nodeNS map[string]netNamespace, l *Ledger) error {
	for i := range l.PFs {
		p := &l.PFs[i]
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted before moving PF %s: %w", p.Name, err)
		}
		start := time.Now()
		if err := moveIn(host, nodeNS[p.Node], p); err != nil {
			return fmt.Errorf("move PF %s (%s) into node %s: %w", p.Name, p.PCI, p.Node, err)
		}
		m.at("moved-unrecorded:" + p.PCI)
		p.State = StateMoved
		if err := writeLedger(m.opts.StateDir, l); err != nil {
			return err
		}
		m.debugf("PF %s (%s) moved into node %s in %s", p.Name, p.PCI, p.Node, time.Since(start).Round(time.Microsecond))
		m.at("moved:" + p.PCI)
	}
	if err := m.ensureVFIO(ctx); err != nil {
		return err
	}
	for i := range l.PFs {
		p := &l.PFs[i]
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted before creating the VFs of PF %s: %w", p.Name, err)
		}
		vfs, err := m.configureVFs(ctx, p)
		if err != nil {
			return fmt.Errorf("VFs of PF %s (%s): %w", p.Name, p.PCI, err)
		}
		m.at("configured-unrecorded:" + p.PCI)
		p.State = StateConfigured
		if err := writeLedger(m.opts.StateDir, l); err != nil {
			return err
		}
		m.debugf("PF %s: %d VFs bound to %s: %v", p.Name, len(vfs), VFDriver, vfs)
		m.at("configured:" + p.PCI)
	}
	return nil
}

// checkNodes verifies that every node still runs in the namespace its PFs
// went to: a node container that stopped or restarted during Up would leave
// them in a namespace nobody uses.
func (m *Manager) checkNodes(ctx context.Context, nodes Nodes, nodeNS map[string]netNamespace) error {
	for w, used := range nodeNS {
		pid, err := nodes.PID(ctx, w)
		if cerr := ctx.Err(); cerr != nil {
			// The container CLI was stopped with us: not a node failure.
			return fmt.Errorf("interrupted while checking node %s: %w", w, cerr)
		}
		if err == nil && pid <= 0 {
			err = errors.New("container is not running")
		}
		if err != nil {
			return fmt.Errorf("node %s stopped during the SR-IOV setup: %w", w, err)
		}
		now, err := m.net.Node(pid)
		if err != nil {
			return fmt.Errorf("node %s: %w", w, err)
		}
		same := now.ID() == used.ID()
		now.Close()
		if !same {
			return fmt.Errorf("node %s restarted during the SR-IOV setup (its network namespace changed)", w)
		}
	}
	return nil
}

// moveIn marks the PF with its alias, moves it into node, sets it up there
// and verifies that it is in the node and gone from the host.
func moveIn(host, node netNamespace, p *LedgerPF) error {
	links, err := host.Links()
	if err != nil {
		return err
	}
	l, ok := linkByName(links, p.Name)
	if !ok {
		return fmt.Errorf("%s is no longer in the host network namespace", p.Name)
	}
	if err := host.SetAlias(l.Index, p.Marker); err != nil {
		return err
	}
	if err := host.MoveTo(l.Index, node); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%w (the node already has a link named %s)", err, p.Name)
		}
		return err
	}
	// Look it up again: the index may change with the namespace.
	nlinks, err := node.Links()
	if err != nil {
		return err
	}
	nl, ok, err := findMarkedPF(nlinks, p)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("not found in the node's network namespace after the move")
	}
	if err := node.SetUp(nl.Index, true); err != nil {
		return err
	}
	if links, err = host.Links(); err != nil {
		return err
	}
	if hl, ok, _ := findMarkedPF(links, p); ok {
		return fmt.Errorf("still in the host network namespace after the move (as %s)", hl.Name)
	}
	if nlinks, err = node.Links(); err != nil {
		return err
	}
	nl, ok, err = findMarkedPF(nlinks, p)
	switch {
	case err != nil:
		return err
	case !ok:
		return errors.New("gone from the node's network namespace right after the move")
	case !nl.Up:
		return fmt.Errorf("%s is not up in the node", nl.Name)
	case nl.Name != p.Name:
		return fmt.Errorf("named %s in the node instead of %s", nl.Name, p.Name)
	}
	return nil
}
