// Package kind122sriov is the kind-1.22-sriov provider: a kind cluster with
// Kubernetes 1.22, a local registry, and the host's SR-IOV PFs moved into its
// worker nodes, with multus, sriov-cni and the SR-IOV device plugin deployed.
//
// Up is a list of named steps (see steps.go); Down undoes them in reverse,
// NICs first, and works from whatever state an interrupted Up left.
package kind122sriov

import (
	"github.com/kubevirt/kubevirtci-go/internal/cri"
	"github.com/kubevirt/kubevirtci-go/internal/kindcluster"
	"github.com/kubevirt/kubevirtci-go/providers"
)

// Name is the provider's name, the value of KUBEVIRT_PROVIDER that selects it.
const Name = "kind-1.22-sriov"

func init() {
	providers.Register(Name, New)
}

// Provider implements providers.Provider.
type Provider struct {
	env  providers.Env
	cli  cri.CLI
	kind kindcluster.Kind // nil until needed
}

// New builds the provider from the validated settings.
func New(env providers.Env) (providers.Provider, error) {
	return &Provider{env: env}, nil
}
