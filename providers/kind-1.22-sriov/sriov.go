package kind122sriov

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/kube"
	"github.com/kubevirt/kubevirtci-go/internal/sriov"
)

// returnTimeout bounds giving the NICs back after a failed or interrupted
// cluster-up, which runs on a fresh context (the original may be cancelled).
const returnTimeout = 5 * time.Minute

func (p *Provider) sriovManager() (*sriov.Manager, error) {
	c := p.cfg()
	return sriov.New(sriov.Options{
		SysfsRoot:      c.SysfsRoot,
		StateDir:       c.SRIOVStateDir,
		Cluster:        c.ClusterName,
		PFCountPerNode: c.PFCountPerNode,
		VFCount:        c.VFsCount,
		Blacklist:      c.PFBlacklist,
	}, p.env.Runner, p.env.Log)
}

// preflightSRIOV runs every SR-IOV check (root, PFs, blacklist, IOMMU,
// vfio-pci, PFs held by other clusters) before the cluster is created. The
// same checks run again under the host-wide lock when the PFs move.
func (p *Provider) preflightSRIOV(ctx context.Context) error {
	m, err := p.sriovManager()
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
	m, err := p.sriovManager()
	if err != nil {
		return err
	}
	st.movingNICs = true
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

// prepareNodes readies each SR-IOV worker for VMs and labels it for the
// SR-IOV components.
func (p *Provider) prepareNodes(ctx context.Context, st *upState) error {
	var nodes []string
	for _, a := range st.assignments {
		if err := sriov.PrepareNode(ctx, p.cli, a.Node); err != nil {
			return err
		}
		nodes = append(nodes, a.Node)
	}
	return kube.LabelNodes(ctx, st.client, nodes, sriov.NodeLabelKey, sriov.NodeLabelValue)
}

// returnNICs gives every PF in the cluster's ledger back to the host.
func (p *Provider) returnNICs(ctx context.Context) error {
	m, err := p.sriovManager()
	if err != nil {
		return err
	}
	return m.Return(ctx, p.cli)
}

// rollbackNICs runs after a failed or interrupted cluster-up: the NICs go
// back to the host at once, whatever else is left for inspection.
func (p *Provider) rollbackNICs(cause error) {
	if p.cli.Run == nil {
		return // failed before anything was set up
	}
	ctx, cancel := context.WithTimeout(context.Background(), returnTimeout)
	defer cancel()
	err := p.env.Log.Run("Returning SR-IOV PFs to the host after the failure", func() error { return p.returnNICs(ctx) })
	if err != nil {
		p.env.Log.Infof("   %v\n   run `make cluster-down` to retry", err)
	}
}

func (p *Provider) statusSRIOV(ctx context.Context, w io.Writer) error {
	m, err := p.sriovManager()
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
