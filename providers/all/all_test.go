package all

import (
	"strings"
	"testing"

	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/providers"
)

// Both providers are linked in, each with its own defaults: the upstream
// images, or with KUBEVIRTCI_SOURCE_IMAGES=true the ones built for it.
func TestBothProvidersWithTheirDefaults(t *testing.T) {
	if got := strings.Join(providers.Names(), ","); got != "kind-1.22-sriov,kind-sriov" {
		t.Fatalf("providers %s", got)
	}
	for _, tc := range []struct {
		name, node, cni, injector string
		src                       images.Versions
	}{
		{"kind-1.22-sriov", "quay.io/kubevirtci/kindest_node:v1.22.2@sha256:", "ghcr.io/k8snetworkplumbingwg/sriov-cni:v2.7.0", "", images.V122},
		{"kind-sriov", "kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5", "ghcr.io/k8snetworkplumbingwg/sriov-cni:v2.9.0", "ghcr.io/k8snetworkplumbingwg/network-resources-injector:v1.9.0", images.V136},
	} {
		d, err := providers.Defaults(tc.name, false)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(d.NodeImage, tc.node) || d.SRIOVCNIImage != tc.cni || d.InjectorImage != tc.injector {
			t.Errorf("%s defaults: %+v", tc.name, d)
		}
		src, err := providers.Defaults(tc.name, true)
		if err != nil {
			t.Fatal(err)
		}
		if src.NodeImage != tc.src.Node.Image() || src.SRIOVDevicePluginImage != tc.src.Components.SRIOVDevicePlugin.Image() || src.RegistryImage != images.RegistryImage {
			t.Errorf("%s source defaults: %+v", tc.name, src)
		}
		if (src.InjectorImage != "") != (tc.injector != "") {
			t.Errorf("%s source defaults: injector %q", tc.name, src.InjectorImage)
		}
	}
	if _, err := providers.Defaults("kind-1.99", false); err == nil || !strings.Contains(err.Error(), "kind-1.22-sriov, kind-sriov") {
		t.Errorf("unknown provider: %v", err)
	}
}
