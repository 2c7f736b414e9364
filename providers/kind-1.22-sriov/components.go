package kind122sriov

import (
	"context"

	"github.com/kubevirt/kubevirtci-go/internal/components"
	"github.com/kubevirt/kubevirtci-go/internal/kubeapply"
	"github.com/kubevirt/kubevirtci-go/internal/sriov"
)

// FieldManager is the server-side apply field manager of everything this
// tool applies.
const FieldManager = "kubevirtci"

func (p *Provider) componentParams(st *upState) components.Params {
	c := p.cfg()
	params := components.DefaultParams()
	params.NodeLabelKey = sriov.NodeLabelKey
	params.NodeLabelValue = sriov.NodeLabelValue
	params.VFDriver = sriov.VFDriver
	params.MultusImage = c.MultusImage
	params.SRIOVCNIImage = c.SRIOVCNIImage
	params.DevicePluginImage = c.SRIOVDevicePluginImage
	// Every PF moved into a node, on every node (the old scripts listed only
	// the last PF of each node).
	for _, a := range st.assignments {
		for _, pf := range a.PFs {
			params.PFNames = append(params.PFNames, pf.Name)
		}
	}
	return params
}

func (p *Provider) deployComponents(ctx context.Context, st *upState) error {
	a, err := kubeapply.NewForConfig(st.rest, FieldManager)
	if err != nil {
		return err
	}
	return components.Deploy(ctx, a, p.componentParams(st), p.env.Log)
}

func (p *Provider) waitComponents(ctx context.Context, st *upState) error {
	c := p.cfg()
	vfs := map[string]int64{}
	for _, a := range st.assignments {
		vfs[a.Node] = int64(len(a.PFs) * c.VFsCount)
	}
	return components.Wait(ctx, st.client, p.componentParams(st), components.WaitOptions{
		Skip:               c.SkipComponentWaits,
		VFsPerNode:         vfs,
		DaemonSetsTimeout:  c.ComponentWaitTimeout,
		PodsTimeout:        c.ComponentWaitTimeout,
		AllocatableTimeout: c.AllocatableWaitTimeout,
	}, p.env.Log)
}
