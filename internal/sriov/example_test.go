package sriov_test

import (
	"context"
	"errors"
	"os"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
	"github.com/kubevirt/kubevirtci-go/internal/sriov"
	"github.com/kubevirt/kubevirtci-go/internal/step"
)

// How cluster-up and cluster-down use the package (not run: it needs root,
// SR-IOV NICs and a kind cluster).
func Example() {
	ctx := context.Background()
	run := cmdrun.Exec{}
	log := step.New(os.Stderr, false)
	m, err := sriov.New(sriov.Options{Cluster: "sriov", PFCountPerNode: 1, VFCount: 6}, run, log)
	if err != nil {
		return
	}
	nodes := sriov.ContainerNodes{Run: run, CLI: "docker"}
	workers := []string{"sriov-worker", "sriov-worker2"}

	// cluster-up, after the kind cluster exists (a Check before creating it
	// fails early, without touching anything):
	if _, err := m.Check(ctx, workers); err != nil {
		return
	}
	assignments, err := m.Up(ctx, nodes, workers) // rolls back by itself on failure
	if err != nil {
		return
	}
	// A simulated setup (fake SRIOV_SYSFS_ROOT) may run on a host without VFIO.
	simulated := m.Options().SysfsRoot != sriov.DefaultSysfsRoot
	for _, w := range workers {
		err := sriov.PrepareNode(ctx, nodes, w)
		if err != nil && !(simulated && errors.Is(err, sriov.ErrNoVFIODevice)) {
			m.Return(ctx, nodes) // a cluster-up failing after Up gives the PFs back
			return
		}
		// label w sriov.NodeLabelKey=sriov.NodeLabelValue with client-go
	}
	_ = assignments // pfNames of the device plugin, per node: the PF names

	// mage status:
	st, _ := m.Status(ctx, nodes)
	sriov.FormatStatus(os.Stdout, st)

	// cluster-down, before deleting the nodes; rerun until it succeeds:
	if err := m.Return(ctx, nodes); err != nil {
		return
	}
}
