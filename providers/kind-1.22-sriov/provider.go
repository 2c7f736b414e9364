// Package kind122sriov is the kind-1.22-sriov provider, the replacement of
// kubevirtci's Bash provider of that name: Kubernetes 1.22, multus v3.8,
// sriov-cni v2.7.0 and the SR-IOV device plugin v3.4.0. The default
// provider. Everything it does is the shared core's (internal/kindsriov);
// this is its description.
package kind122sriov

import (
	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/kindsriov"
)

// Spec describes kind-1.22-sriov.
var Spec = kindsriov.Spec{
	Name:       "kind-1.22-sriov",
	Kubernetes: images.Node122.Kubernetes,
	Defaults: config.Defaults{
		NodeImage:              "quay.io/kubevirtci/kindest_node:v1.22.2@sha256:f638a08c1f68fe2a99e724ace6df233a546eaf6713019a0b310130a4f91ebe7f",
		MultusImage:            images.Components122.Multus.UpstreamImage(),
		SRIOVCNIImage:          images.Components122.SRIOVCNI.UpstreamImage(),
		SRIOVDevicePluginImage: images.Components122.SRIOVDevicePlugin.UpstreamImage(),
	},
	Images: images.V122,
	// The static CPU manager (dedicated CPUs for VMs) and the CPU it needs
	// reserved; Kubernetes 1.22 still has the CPUManager feature gate.
	WorkerKubelet: map[string]string{
		"cpu-manager-policy": "static",
		"feature-gates":      "CPUManager=true",
		"kube-reserved":      "cpu=500m",
		"system-reserved":    "cpu=500m",
	},
}

func init() { Spec.Register() }
