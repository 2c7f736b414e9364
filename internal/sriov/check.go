package sriov

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Assignment is the PFs one worker node gets.
type Assignment struct {
	Node string
	PFs  []PF
}

// HeldPF is a PF found on the host that another cluster's ledger holds.
type HeldPF struct {
	PF
	Cluster string
	Ledger  string
}

// Plan is the outcome of Check: what was found and who would get what.
type Plan struct {
	Workers     []string
	Found       []PF // every SR-IOV PF in the host namespace, by PCI address
	Blacklisted []PF
	TooFewVFs   []PF // sriov_totalvfs below VFS_COUNT: never taken
	InUse       []HeldPF
	Available   []PF
	Assignments []Assignment
}

// PFNames are the names of the PFs assigned to node, in order: the names
// they keep inside the node (the SR-IOV device plugin's pfNames).
func (p *Plan) PFNames(node string) []string { return pfNames(p.Assignments, node) }

func pfNames(as []Assignment, node string) []string {
	for _, a := range as {
		if a.Node == node {
			names := make([]string, len(a.PFs))
			for i, pf := range a.PFs {
				names[i] = pf.Name
			}
			return names
		}
	}
	return nil
}

// Check runs every check that can be made before touching anything and
// returns the plan. All failed checks are reported together. It takes no
// lock: Up checks again under the lock.
func (m *Manager) Check(ctx context.Context, workers []string) (*Plan, error) {
	var errs []error
	if err := checkWorkers(workers); err != nil {
		return nil, err
	}
	if m.euid() != 0 {
		errs = append(errs, errors.New("SR-IOV setup needs root: it moves NICs between network namespaces and writes to sysfs (run as root, e.g. with sudo)"))
	}
	// The kernel hands the PFs of a dying node back to the initial network
	// namespace: from any other, a PF could be lost from sight.
	if initial, err := m.initialNetns(); err != nil {
		errs = append(errs, err)
	} else if !initial {
		errs = append(errs, errors.New("SR-IOV setup must run in the host's initial network namespace (that of PID 1): the kernel gives PFs of a node that dies back to that namespace, where this process could not find them; run it on the host, or in a container with host networking and the host's PID namespace"))
	}
	if !exists(m.sys.root) {
		return nil, errors.Join(append(errs, fmt.Errorf("SRIOV_SYSFS_ROOT=%s does not exist (use /sys, or a tree made by the SR-IOV simulator)", m.sys.root))...)
	}
	if err := m.checkIOMMU(); err != nil {
		errs = append(errs, err)
	}
	if err := m.checkVFIO(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := checkState(m.opts.StateDir); err != nil {
		errs = append(errs, err)
	}
	if l, err := ReadLedger(m.opts.StateDir, m.opts.Cluster); err != nil {
		errs = append(errs, err)
	} else if l != nil {
		errs = append(errs, fmt.Errorf("cluster %q already holds SR-IOV PFs (ledger %s): run cluster-down for it first, which gives them back", m.opts.Cluster, LedgerPath(m.opts.StateDir, m.opts.Cluster)))
	}
	held, err := otherLedgers(m.opts.StateDir, m.opts.Cluster)
	if err != nil {
		errs = append(errs, err)
	}
	found, err := m.Discover()
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	found, uplinks, err := m.withoutUplinks(found)
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	plan, err := allocate(found, m.opts, held, workers)
	if err != nil {
		if len(uplinks) > 0 {
			verb := "carry"
			if len(uplinks) == 1 {
				verb = "carries"
			}
			err = fmt.Errorf("%w; not counted: %s, which %s the host's default route (moving it would cut the host off the network)",
				err, names(uplinks), verb)
		}
		errs = append(errs, err)
	}
	return plan, errors.Join(errs...)
}

// withoutUplinks drops the PFs that carry a default route of the host: a
// user who forgot to blacklist the host's uplink would otherwise lose the
// host's network (a reported pain point of the old scripts).
func (m *Manager) withoutUplinks(found []PF) (kept, dropped []PF, err error) {
	if m.uplinks == nil {
		return found, nil, nil
	}
	up, err := m.uplinks()
	if err != nil {
		return nil, nil, err
	}
	for _, pf := range found {
		if up[pf.Index] {
			dropped = append(dropped, pf)
			if m.log != nil {
				m.log.Infof("   not taking PF %s (%s): it carries the host's default route", pf.Name, pf.PCI)
			}
			continue
		}
		kept = append(kept, pf)
	}
	return kept, dropped, nil
}

func checkWorkers(workers []string) error {
	if len(workers) == 0 {
		return errors.New("SR-IOV needs at least one worker node (KUBEVIRT_NUM_NODES must be 2 or more)")
	}
	seen := map[string]bool{}
	for _, w := range workers {
		if w == "" || seen[w] {
			return fmt.Errorf("worker node names must be unique and not empty: %q", workers)
		}
		seen[w] = true
	}
	return nil
}

func (m *Manager) checkIOMMU() error {
	groups, _ := filepath.Glob(m.sys.path("kernel", "iommu_groups", "*"))
	if len(groups) == 0 {
		return fmt.Errorf("the IOMMU is off (%s is empty): VFs cannot be given to VMs; enable VT-d or AMD-Vi in the firmware and boot with intel_iommu=on iommu=pt (or amd_iommu=on)", m.sys.path("kernel", "iommu_groups"))
	}
	return nil
}

func (m *Manager) checkVFIO(ctx context.Context) error {
	if exists(m.sys.driverDir(VFDriver)) {
		return nil
	}
	if _, err := m.run.Run(ctx, nil, "modprobe", "--dry-run", VFModule); err != nil {
		return fmt.Errorf("the %s driver is not loaded (%s is missing) and cannot be loaded: %w", VFDriver, m.sys.driverDir(VFDriver), err)
	}
	return nil
}

// allocate picks opts.PFCountPerNode PFs per worker, in PCI address order,
// skipping blacklisted PFs (exact names or PCI addresses), PFs that cannot
// have opts.VFCount VFs, and PFs other clusters hold.
func allocate(found []PF, opts Options, held []heldPF, workers []string) (*Plan, error) {
	plan := &Plan{Workers: workers, Found: found}
	black := map[string]bool{}
	for _, b := range opts.Blacklist {
		if b = strings.TrimSpace(b); b != "" {
			black[b] = true
		}
	}
	for _, pf := range found {
		if black[pf.Name] || black[pf.PCI] {
			plan.Blacklisted = append(plan.Blacklisted, pf)
			continue
		}
		if pf.TotalVFs < opts.VFCount {
			plan.TooFewVFs = append(plan.TooFewVFs, pf)
			continue
		}
		if h, ok := heldBy(held, pf); ok {
			plan.InUse = append(plan.InUse, HeldPF{PF: pf, Cluster: h.Cluster, Ledger: h.Ledger})
			continue
		}
		plan.Available = append(plan.Available, pf)
	}
	// PFs other clusters hold that are not in the host namespace (in their
	// nodes, or lost): not candidates either, but worth naming.
	var away []string
	for _, h := range held {
		seen := false
		for _, u := range plan.InUse {
			if u.Cluster == h.Cluster && (u.PCI == h.PCI || u.Name == h.Name) {
				seen = true
			}
		}
		if !seen {
			away = append(away, fmt.Sprintf("%s by cluster %q", h.Name, h.Cluster))
		}
	}
	need := len(workers) * opts.PFCountPerNode
	switch {
	case len(found) == 0 && len(away) == 0:
		return plan, fmt.Errorf("no SR-IOV PF found: no network device in the host namespace has %s (SRIOV_SYSFS_ROOT=%s)",
			filepath.Join(opts.SysfsRoot, "class/net/<name>/device/sriov_totalvfs"), opts.SysfsRoot)
	case len(found) > 0 && len(plan.Blacklisted) == len(found):
		return plan, fmt.Errorf("every SR-IOV PF found is blacklisted by PF_BLACKLIST (%s): remove some of them from PF_BLACKLIST", names(plan.Blacklisted))
	case len(plan.Available) < need:
		tooFew := ""
		if len(plan.TooFewVFs) > 0 {
			var vfs []string
			for _, pf := range plan.TooFewVFs {
				vfs = append(vfs, fmt.Sprintf("%s %d", pf.Name, pf.TotalVFs))
			}
			tooFew = fmt.Sprintf(", %d with fewer VFs than VFS_COUNT=%d (sriov_totalvfs: %s)", len(plan.TooFewVFs), opts.VFCount, strings.Join(vfs, ", "))
		}
		msg := fmt.Sprintf("not enough SR-IOV PFs: need %d (%d workers x PF_COUNT_PER_NODE=%d), found %d: %d blacklisted by PF_BLACKLIST%s%s, %d in use by other clusters%s, %d available%s",
			need, len(workers), opts.PFCountPerNode, len(found),
			len(plan.Blacklisted), paren(names(plan.Blacklisted)), tooFew,
			len(plan.InUse), paren(heldNames(plan.InUse)),
			len(plan.Available), paren(names(plan.Available)))
		if len(away) > 0 {
			msg += fmt.Sprintf("; other clusters hold %d more PF(s) outside the host namespace (%s)", len(away), strings.Join(away, ", "))
		}
		if len(plan.InUse) > 0 || len(away) > 0 {
			msg += "; a PF used by another cluster comes back with that cluster's cluster-down (ledgers in " + filepath.Dir(held[0].Ledger) + ")"
		} else if len(plan.TooFewVFs) > 0 {
			msg += "; lower VFS_COUNT, PF_COUNT_PER_NODE or the number of nodes"
		} else {
			msg += "; lower PF_COUNT_PER_NODE or the number of nodes"
		}
		return plan, errors.New(msg)
	}
	for i, w := range workers {
		plan.Assignments = append(plan.Assignments, Assignment{
			Node: w,
			PFs:  append([]PF(nil), plan.Available[i*opts.PFCountPerNode:(i+1)*opts.PFCountPerNode]...),
		})
	}
	return plan, nil
}

func heldBy(held []heldPF, pf PF) (heldPF, bool) {
	for _, h := range held {
		// By PCI address, and by name too: a name in another ledger that is
		// on the host may be the same device found under another root.
		if h.PCI == pf.PCI || h.Name == pf.Name {
			return h, true
		}
	}
	return heldPF{}, false
}

func names(pfs []PF) string {
	s := make([]string, len(pfs))
	for i, p := range pfs {
		s[i] = p.Name
	}
	return strings.Join(s, ", ")
}

func heldNames(h []HeldPF) string {
	s := make([]string, len(h))
	for i, p := range h {
		s[i] = fmt.Sprintf("%s by cluster %q", p.Name, p.Cluster)
	}
	return strings.Join(s, ", ")
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}
