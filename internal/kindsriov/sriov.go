package kindsriov

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/sriov"
)

// returnTimeout bounds the rollback of a failed or interrupted cluster-up,
// which runs on a fresh context (the original may be cancelled).
const returnTimeout = 5 * time.Minute

// preflightSRIOV runs every SR-IOV check (root, PFs, blacklist, IOMMU,
// vfio-pci, PFs held by other clusters) before the cluster is created. The
// same checks run again under the host-wide lock when the PFs move.
func (p *Provider) preflightSRIOV(ctx context.Context) error {
	m, err := p.deps.nics()
	if err != nil {
		return err
	}
	plan, err := m.Check(ctx, p.cfg().WorkerNodes())
	if err != nil {
		return err
	}
	for _, a := range plan.Assignments {
		p.env.Log.Debugf("%s would get %s", a.Node, strings.Join(plan.PFNames(a.Node), ", "))
	}
	return nil
}

// moveNICs lends the PFs to the workers (under the host-wide lock, with the
// ledger written first), creates the VFs and binds them to vfio-pci.
func (p *Provider) moveNICs(ctx context.Context, st *upState) error {
	m, err := p.deps.nics()
	if err != nil {
		return err
	}
	// Recorded first: m.Up gives back what it took when it fails, but a
	// crash or a failed give-back leaves the ledger, which the undo reads.
	st.made[madeNICs] = true
	st.assignments, err = m.Up(ctx, p.cli, p.cfg().WorkerNodes())
	if err != nil {
		return err
	}
	for _, a := range st.assignments {
		names := make([]string, len(a.PFs))
		for i, pf := range a.PFs {
			names[i] = fmt.Sprintf("%s (%s)", pf.Name, pf.PCI)
		}
		p.env.Log.Infof("   %s: %s", a.Node, strings.Join(names, ", "))
	}
	return nil
}

// sriovNodes are the workers that got PFs.
func (st *upState) sriovNodes() []string {
	var nodes []string
	for _, a := range st.assignments {
		nodes = append(nodes, a.Node)
	}
	return nodes
}

// prepareNodes readies each SR-IOV worker for VMs, in the node container
// (labelNodes labels it for the SR-IOV components once it has joined).
func (p *Provider) prepareNodes(ctx context.Context, st *upState) error {
	return inEachNode(ctx, st.sriovNodes(), func(ctx context.Context, n string) error { return sriov.PrepareNode(ctx, p.cli, n) })
}

// returnNetdevs is the undo of moveNICs: every PF in the cluster's ledger
// back in the host's network namespace, while the nodes still exist.
func (p *Provider) returnNetdevs(ctx context.Context) error {
	m, err := p.deps.nics()
	if err != nil {
		return err
	}
	return m.ReturnNetdevs(ctx, p.cli)
}

// returnNICs is the release of moveNICs: every PF in the cluster's ledger
// given back, VF count and VF drivers restored, and the ledger removed.
func (p *Provider) returnNICs(ctx context.Context) error {
	m, err := p.deps.nics()
	if err != nil {
		return err
	}
	return m.Return(ctx, p.cli)
}

func (p *Provider) statusSRIOV(ctx context.Context, w io.Writer) error {
	m, err := p.deps.nics()
	if err != nil {
		return err
	}
	st, err := m.Status(ctx, p.cli)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "SR-IOV:")
	return sriov.FormatStatus(w, st)
}
