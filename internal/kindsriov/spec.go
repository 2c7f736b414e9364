package kindsriov

import (
	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/providers"
)

// Spec describes one SR-IOV kind provider: everything in which the
// providers differ. The steps, their undos, the SR-IOV code, the
// components' deployment and waits, sync and status are this package's,
// the same for every provider.
type Spec struct {
	// Name is the value of KUBEVIRT_PROVIDER that selects the provider.
	Name string
	// Kubernetes is the version of its default node image.
	Kubernetes string
	// Defaults are the images it runs when the user names none: the
	// upstream images, pulled from their registries. Its component set
	// follows from them: an InjectorImage deploys
	// network-resources-injector.
	Defaults config.Defaults
	// Images are the versions of the images `make images` builds for it
	// from source, for hosts that reach no registry.
	Images images.Versions
	// WorkerKubelet are the kubelet flags of the worker nodes.
	WorkerKubelet map[string]string
	// KubeletRefusesCgroupV1: its kubelet (Kubernetes 1.35 and later)
	// refuses a cgroup v1 host unless told otherwise, which cluster-up
	// does on such a host.
	KubeletRefusesCgroupV1 bool
}

// Register adds the provider that s describes to the registry.
func (s Spec) Register() {
	providers.Register(providers.Description{
		Name:       s.Name,
		Kubernetes: s.Kubernetes,
		Defaults:   s.Defaults,
		Images:     s.Images,
		New:        func(env providers.Env) (providers.Provider, error) { return New(s, env) },
	})
}
