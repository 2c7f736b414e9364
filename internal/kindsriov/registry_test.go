package kindsriov

import (
	"context"
	"errors"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"

	"github.com/kubevirt/kubevirtci-go/internal/components"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/kubewait"
)

// Every node gets, in one script, the hosts.toml of the cluster's registry
// and of each mirrored host (REGISTRY_MIRRORS), mirrors in order.
func TestMirrorsInEveryNode(t *testing.T) {
	h := newHarness(t, newWorld("pf0", "pf1"), map[string]string{
		config.EnvRegistryMirrors: "docker.io=http://cache:5000,ghcr.io=https://ghcr-mirror.example.com,docker.io=https://second.example.com",
	})
	if err := h.p.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"sriov-control-plane", "sriov-worker", "sriov-worker2"} {
		scripts := h.w.scripts[n]
		if len(scripts) != 1 {
			t.Fatalf("%s ran %d scripts, want the node set-up only:\n%s", n, len(scripts), strings.Join(scripts, "\n---\n"))
		}
		s := scripts[0]
		for _, want := range []string{
			"cat > '/etc/containerd/certs.d/registry:5000/hosts.toml' <<'KUBEVIRTCI_EOF'\nserver = \"http://sriov-registry:5000\"",
			"cat > '/etc/containerd/certs.d/docker.io/hosts.toml' <<'KUBEVIRTCI_EOF'\nserver = \"https://registry-1.docker.io\"\n\n[host.\"http://cache:5000\"]\ncapabilities = [\"pull\", \"resolve\"]\n\n[host.\"https://second.example.com\"]",
			"cat > '/etc/containerd/certs.d/ghcr.io/hosts.toml' <<'KUBEVIRTCI_EOF'\nserver = \"https://ghcr.io\"\n\n[host.\"https://ghcr-mirror.example.com\"]",
			"sysctl -q -w net.bridge.bridge-nf-call-arptables=1",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("%s: the set-up lacks %q:\n%s", n, want, s)
			}
		}
	}
}

// With CI=true and no REGISTRY_PROXY, a proxy that does not answer is
// refused by name before anything is created, with the way to turn it off.
func TestProxyNotAnsweringRefusedFirst(t *testing.T) {
	w := hostWithOtherCluster()
	h := newHarness(t, w, map[string]string{config.EnvCI: "true"})
	before := h.snapshot()
	w.fail["proxy"] = errors.New(`Get "http://docker-mirror-proxy.kubevirt-prow.svc:3128/setup/systemd": dial tcp: lookup docker-mirror-proxy.kubevirt-prow.svc: no such host`)
	err := h.p.Up(context.Background())
	if err == nil {
		t.Fatal("cluster-up went on without the proxy")
	}
	for _, want := range []string{
		`REGISTRY_PROXY="docker-mirror-proxy.kubevirt-prow.svc:3128" (the default): CI=true points the nodes at kubevirtci CI's registry proxy, which does not answer: Get "http://docker-mirror-proxy.kubevirt-prow.svc:3128/setup/systemd"`,
		"set REGISTRY_PROXY=off to pull without a proxy",
		"Nothing was changed",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q:\n%v", want, err)
		}
	}
	if after := h.snapshot(); after != before {
		t.Errorf("the host changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// The proxy's setup, adapted to containerd, runs in every node after the
// node set-up, with NO_PROXY naming the private ranges, the cluster's
// registry and the mirrors; the local images are imported after it (the
// script restarts containerd). REGISTRY_PROXY=off turns it off.
func TestProxySetupInEveryNode(t *testing.T) {
	h := newHarness(t, newWorld("pf0", "pf1"), map[string]string{
		config.EnvCI:              "true",
		config.EnvRegistryMirrors: "ghcr.io=http://mirror:5000",
	})
	if err := h.p.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"sriov-control-plane", "sriov-worker", "sriov-worker2"} {
		var proxy string
		for _, s := range h.w.scripts[n] {
			if strings.Contains(s, "HTTPS_PROXY") {
				proxy = s
			}
		}
		want := `echo 'Environment="HTTPS_PROXY=http://proxy:3128/"' >> /etc/systemd/system/containerd.service.d/http-proxy.conf "NO_PROXY=127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,localhost,sriov-registry,mirror"` + "\nsystemctl restart containerd.service"
		if !strings.Contains(proxy, want) {
			t.Errorf("%s: the proxy set-up is\n%s\nwant\n%s", n, proxy, want)
		}
	}
	if !strings.Contains(h.log.String(), "Pointing the nodes' containerd at the registry proxy docker-mirror-proxy.kubevirt-prow.svc:3128") {
		t.Errorf("no step line for the proxy:\n%s", h.log)
	}

	off := newHarness(t, newWorld("pf0", "pf1"), map[string]string{config.EnvCI: "true", config.EnvRegistryProxy: "off"})
	off.w.fail["proxy"] = errInjected // asked, it would fail
	if err := off.p.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	for n, scripts := range off.w.scripts {
		if len(scripts) != 1 {
			t.Errorf("REGISTRY_PROXY=off: %s ran %d scripts", n, len(scripts))
		}
	}
}

// A setup script that fails in a node fails cluster-up, naming the node
// and the setting, and leaves the host as it was but for what is kept
// for inspection; cluster-down then removes it.
func TestProxySetupFails(t *testing.T) {
	w := hostWithOtherCluster()
	h := newHarness(t, w, map[string]string{config.EnvCI: "true"})
	before := h.snapshot()
	w.fail["bash -s"] = errInjected
	err := h.p.Up(context.Background())
	if err == nil || !strings.Contains(err.Error(), "the registry proxy's setup script failed (REGISTRY_PROXY=docker-mirror-proxy.kubevirt-prow.svc:3128; REGISTRY_PROXY=off pulls without it)") {
		t.Fatalf("cluster-up: %v", err)
	}
	if err := h.p.Down(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := h.snapshot(); after != before {
		t.Errorf("the host changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// A component wait that fails on image pulls names the settings that
// chose the images.
func TestPullFailureNamesTheSetting(t *testing.T) {
	h := newHarness(t, newWorld("pf0", "pf1"), map[string]string{config.EnvSRIOVCNIImage: "ghcr.io/k8snetworkplumbingwg/sriov-cni:v0.0.0-missing"})
	var asked components.WaitOptions
	h.p.deps.waitComponents = func(ctx context.Context, client kubernetes.Interface, params components.Params, o components.WaitOptions) error {
		asked = o
		return &kubewait.Error{What: "daemonsets", Err: kubewait.ErrWontHeal, Problems: []string{
			"pod sriov/kube-sriov-cni-ds-x on node sriov-worker: container c waiting: ErrImagePull (image ghcr.io/k8snetworkplumbingwg/sriov-cni:v0.0.0-missing): not found"}}
	}
	err := h.p.Up(context.Background())
	if !asked.FailFast {
		t.Error("cluster-up's component waits do not fail fast on image pulls")
	}
	if err == nil || !strings.Contains(err.Error(), "The images of these containers are set by SRIOV_CNI_IMAGE=ghcr.io/k8snetworkplumbingwg/sriov-cni:v0.0.0-missing: set them to an image the nodes can pull") ||
		strings.Contains(err.Error(), "MULTUS_IMAGE=") {
		t.Fatalf("cluster-up: %v", err)
	}
	if err := h.p.Down(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A KUBECTL_PATH the local node image lacks is refused by name before
// anything is created; one it has is taken.
func TestKubectlPathCheckedInTheImage(t *testing.T) {
	w := hostWithOtherCluster()
	h := newHarness(t, w, map[string]string{config.EnvKubectlPath: "/nope/kubectl"})
	w.images[h.p.cfg().NodeImage] = true
	before := h.snapshot()
	err := h.p.Up(context.Background())
	if err == nil || !strings.Contains(err.Error(), `KUBECTL_PATH="/nope/kubectl": no such file in the node image `+h.p.cfg().NodeImage) || !strings.Contains(err.Error(), "Nothing was changed") {
		t.Fatalf("cluster-up: %v", err)
	}
	if after := h.snapshot(); after != before {
		t.Errorf("the host changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	ok := newHarness(t, newWorld("pf0", "pf1"), map[string]string{config.EnvKubectlPath: "/usr/bin/kubectl"})
	ok.w.images[ok.p.cfg().NodeImage] = true
	if err := ok.p.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
}
