package kindsriov

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubevirt/kubevirtci-go/internal/config"
)

// TestKindSRIOVSpec: the same core, driven by kind-sriov's description,
// renders its kind config (kubelet flags, failCgroupV1 on a cgroup v1 host
// only), deploys its injector, writes its own files and cleans up alike.
func TestKindSRIOVSpec(t *testing.T) {
	for _, v2 := range []bool{false, true} {
		h := newHarness(t, hostWithOtherCluster(), map[string]string{config.EnvProvider: "kind-sriov"})
		h.p.deps.unifiedCgroups = func() (bool, error) { return v2, nil }
		before := h.snapshot()
		if err := h.p.Up(context.Background()); err != nil {
			t.Fatalf("cgroup v2 %v: cluster-up: %v\n%s", v2, err, h.log)
		}
		if !strings.Contains(h.snapshot(), "file kind-sriov/config-provider-kind-sriov.sh") {
			t.Errorf("kind-sriov's files are not in its own folder:\n%s", h.snapshot())
		}
		cfg, err := os.ReadFile(filepath.Join(h.p.cfg().StateDir(), "kind-config.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(cfg), "topology-manager-policy: single-numa-node") || strings.Contains(string(cfg), "CPUManager") {
			t.Errorf("kind-sriov's workers: want its kubelet flags and no CPUManager gate:\n%s", cfg)
		}
		if got := strings.Contains(string(cfg), "failCgroupV1: false"); got == v2 {
			t.Errorf("cgroup v2 host %v: failCgroupV1 patch rendered %v:\n%s", v2, got, cfg)
		}
		if h.waited == nil || h.waited.InjectorImage != "ghcr.io/k8snetworkplumbingwg/network-resources-injector:v1.9.0" {
			t.Errorf("the component wait was not given the injector: %+v", h.waited)
		}
		if !strings.Contains(h.log.String(), "network-resources-injector rolled out") {
			t.Errorf("the summary does not name the injector:\n%s", h.log)
		}
		h.down("kind-sriov", before)
	}

	// kind-1.22-sriov: no injector, no cgroup patch, the CPUManager gate.
	h := newHarness(t, hostWithOtherCluster(), nil)
	if err := h.p.Up(context.Background()); err != nil {
		t.Fatalf("cluster-up: %v\n%s", err, h.log)
	}
	if h.waited == nil || h.waited.InjectorImage != "" {
		t.Errorf("kind-1.22-sriov got an injector: %+v", h.waited)
	}
	cfg, _ := os.ReadFile(filepath.Join(h.p.cfg().StateDir(), "kind-config.yaml"))
	if strings.Contains(string(cfg), "failCgroupV1") {
		t.Errorf("kind-1.22-sriov's kubelet got failCgroupV1:\n%s", cfg)
	}
}

// TestIPv6OnTheSourceNodeImageRefused: the node image built here runs
// flannel for IPv4 only; IPFAMILY=ipv6 on it is refused, by name, before
// anything is created.
func TestIPv6OnTheSourceNodeImageRefused(t *testing.T) {
	h := newHarness(t, hostWithOtherCluster(), map[string]string{
		config.EnvProvider: "kind-sriov", config.EnvIPFamily: "ipv6", config.EnvSourceImages: "true",
	})
	h.p.env.Config.NodeImage = h.p.spec.Images.Node.Image() // what KUBEVIRTCI_SOURCE_IMAGES=true gives through the registry
	before := h.snapshot()
	err := h.p.Up(context.Background())
	if err == nil || !strings.Contains(err.Error(), `IPFAMILY="ipv6"`) || !strings.Contains(err.Error(), "Nothing was changed") {
		t.Fatalf("cluster-up: %v, want IPFAMILY refused and nothing changed", err)
	}
	if got := h.snapshot(); got != before {
		t.Errorf("the host changed:\n%s\nwas\n%s", got, before)
	}
}
