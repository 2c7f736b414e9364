// Package kindsriov is the kind-sriov provider, what kubevirtci's SR-IOV
// lanes run today: Kubernetes 1.36, multus v3.8, sriov-cni v2.9.0, the
// SR-IOV device plugin v3.9.0 and network-resources-injector v1.9.0.
// Everything it does is the shared core's (internal/kindsriov); this is
// its description.
package kindsriov

import (
	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	core "github.com/kubevirt/kubevirtci-go/internal/kindsriov"
)

// Spec describes kind-sriov.
var Spec = core.Spec{
	Name:       "kind-sriov",
	Kubernetes: "v1.36.1",
	Defaults: config.Defaults{
		NodeImage:              "kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5",
		MultusImage:            images.Components136.Multus.UpstreamImage(),
		SRIOVCNIImage:          images.Components136.SRIOVCNI.UpstreamImage(),
		SRIOVDevicePluginImage: images.Components136.SRIOVDevicePlugin.UpstreamImage(),
		InjectorImage:          images.Components136.Injector.UpstreamImage(),
	},
	Images: images.V136,
	// The static CPU manager with CPU reserved for the system and for
	// Kubernetes (the CPUManager feature gate is gone since 1.26's GA),
	// and NUMA-aligned resources for VMs.
	WorkerKubelet: map[string]string{
		"cpu-manager-policy":      "static",
		"kube-reserved":           "cpu=500m",
		"system-reserved":         "cpu=500m",
		"topology-manager-policy": "single-numa-node",
	},
	KubeletRefusesCgroupV1: true,
}

func init() { Spec.Register() }
