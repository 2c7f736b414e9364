package sriov

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// Status is what a cluster holds, for `mage status`.
type Status struct {
	Cluster    string
	LedgerPath string
	Ledger     *Ledger // nil when the cluster holds no PF
	Nodes      []NodeStatus
}

// NodeStatus is one worker's PFs.
type NodeStatus struct {
	Node string
	PFs  []PFStatus
}

// PFStatus is one PF and its VFs, read from sysfs through the PCI device.
type PFStatus struct {
	Name     string
	PCI      string
	State    PFState
	Where    string // "node", "host", "missing" or "unknown"
	TotalVFs int
	NumVFs   int
	VFs      []VFStatus
	Err      string // what could not be read
}

// VFStatus is one VF.
type VFStatus struct {
	Index  int
	PCI    string
	Driver string // "" when unbound
}

// Status reads the ledger and, for each PF, its VFs and drivers. nodes may
// be nil; then where each PF is stays "unknown".
func (m *Manager) Status(ctx context.Context, nodes Nodes) (*Status, error) {
	st := &Status{Cluster: m.opts.Cluster, LedgerPath: LedgerPath(m.opts.StateDir, m.opts.Cluster)}
	l, err := ReadLedger(m.opts.StateDir, m.opts.Cluster)
	if err != nil || l == nil {
		return st, err
	}
	st.Ledger = l
	// The VFs are read where the cluster was made: a simulated sysfs
	// (SRIOV_SYSFS_ROOT) is recorded in the ledger, and `make status` is
	// run without the setting.
	sys := m.sys
	if l.SysfsRoot != "" && filepath.IsAbs(l.SysfsRoot) {
		sys = sysfs{root: filepath.Clean(l.SysfsRoot)}
	}
	var hostLinks []linkInfo
	var host netNamespace
	if nodes != nil {
		if host, err = m.net.Host(); err == nil {
			defer host.Close()
			hostLinks, _ = host.Links()
		}
	}
	nodeLinks := map[string][]linkInfo{}
	nodeSeen := map[string]bool{}
	linksOf := func(node string) ([]linkInfo, bool) {
		if !nodeSeen[node] {
			nodeSeen[node] = true
			if pid, err := nodes.PID(ctx, node); err == nil && pid > 0 {
				if ns, err := m.net.Node(pid); err == nil {
					nodeLinks[node], _ = ns.Links()
					ns.Close()
				}
			}
		}
		ls, ok := nodeLinks[node]
		return ls, ok
	}
	for _, p := range l.PFs {
		ps := PFStatus{Name: p.Name, PCI: p.PCI, State: p.State, Where: "unknown"}
		if host != nil {
			if _, ok, _ := findPF(hostLinks, &p); ok {
				ps.Where = "host"
			} else if ls, ok := linksOf(p.Node); ok {
				if _, found, _ := findPF(ls, &p); found {
					ps.Where = "node"
				} else {
					ps.Where = "missing"
				}
			} else {
				ps.Where = "missing"
			}
		}
		m.readVFs(sys, &ps)
		var ns *NodeStatus
		for i := range st.Nodes {
			if st.Nodes[i].Node == p.Node {
				ns = &st.Nodes[i]
			}
		}
		if ns == nil {
			st.Nodes = append(st.Nodes, NodeStatus{Node: p.Node})
			ns = &st.Nodes[len(st.Nodes)-1]
		}
		ns.PFs = append(ns.PFs, ps)
	}
	return st, nil
}

func (m *Manager) readVFs(sys sysfs, ps *PFStatus) {
	dev := sys.pciDevice(ps.PCI)
	var errs []string
	var err error
	if ps.TotalVFs, err = sys.readInt(filepath.Join(dev, "sriov_totalvfs")); err != nil {
		errs = append(errs, err.Error())
	}
	if ps.NumVFs, err = sys.readInt(filepath.Join(dev, "sriov_numvfs")); err != nil {
		errs = append(errs, err.Error())
	}
	vfs, err := virtfns(sys, ps.PCI)
	if err != nil {
		errs = append(errs, err.Error())
	}
	for i, vf := range vfs {
		drv, _ := linkBase(filepath.Join(sys.pciDevice(vf), "driver"))
		ps.VFs = append(ps.VFs, VFStatus{Index: i, PCI: vf, Driver: drv})
	}
	ps.Err = strings.Join(errs, "; ")
}

// FormatStatus writes st as text:
//
//	SR-IOV PFs of cluster "sriov" (ledger /var/lib/kubevirtci/sriov/sriov.json, updated ...)
//	  node sriov-worker
//	    PF ens1f0  0000:3b:00.0  in node  configured  VFs 6/64
//	      VF 0  0000:3b:02.0  vfio-pci
func FormatStatus(w io.Writer, st *Status) error {
	if st.Ledger == nil {
		_, err := fmt.Fprintf(w, "SR-IOV: cluster %q holds no PFs (no ledger at %s)\n", st.Cluster, st.LedgerPath)
		return err
	}
	b := &strings.Builder{}
	fmt.Fprintf(b, "SR-IOV PFs of cluster %q (ledger %s, updated %s)\n", st.Cluster, st.LedgerPath, st.Ledger.Updated.Format("2006-01-02 15:04:05 MST"))
	for _, n := range st.Nodes {
		fmt.Fprintf(b, "  node %s\n", n.Node)
		for _, p := range n.PFs {
			where := p.Where
			if where == "node" || where == "host" {
				where = "in " + where
			}
			fmt.Fprintf(b, "    PF %s  %s  %s  %s  VFs %d/%d\n", p.Name, p.PCI, where, p.State, p.NumVFs, p.TotalVFs)
			if p.Err != "" {
				fmt.Fprintf(b, "      error: %s\n", p.Err)
			}
			for _, vf := range p.VFs {
				drv := vf.Driver
				if drv == "" {
					drv = "(no driver)"
				}
				fmt.Fprintf(b, "      VF %d  %s  %s\n", vf.Index, vf.PCI, drv)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
