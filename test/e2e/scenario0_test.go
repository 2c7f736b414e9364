package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubevirt/kubevirtci-go/internal/cgroupv1"
	"github.com/kubevirt/kubevirtci-go/internal/config"
)

// customKindVersion is the kind release the old provider pinned.
const customKindVersion = "0.11.1"

// TestScenarioCustomKind is the old README's "Setting a custom kind
// version", with values that exist offline: KIND_VERSION=0.11.1 (the tool
// builds that release with go install from the module proxy),
// KUBECTL_PATH=/usr/bin/kubectl, and KIND_NODE_IMAGE a retagged copy of the
// node image; PF_COUNT_PER_NODE is left at its default. Cluster up,
// `kubectl.sh get nodes`, status, down. kind 0.11.1's nodes leave cgroup v1
// hierarchies behind on a cgroup v1 host, which keep later kind nodes from
// starting: cluster-down must leave none, and this test runs before the
// other scenarios (file order), whose kind clusters would fail otherwise.
func TestScenarioCustomKind(t *testing.T) {
	requireE2E(t)
	requireNoCluster(t, "sriov")
	if hs, err := cgroupv1.Find("/proc"); err != nil || len(hs) > 0 {
		t.Fatalf("the host has hidden cgroup v1 hierarchies before the test (%v): %v", err, hs)
	}
	custom := "localhost/kindest-node:e2e-custom"
	dockerT(t, "tag", nodeImage, custom)
	t.Cleanup(func() { _, _ = docker(context.Background(), "rmi", custom) })
	pfs := newPFSet(t, "e2ekpf", 0xb6, 1)
	c := newCluster(t, clusterOpts{nodes: 2, pfs: pfs, stateDir: filepath.Join(t.TempDir(), "sriov-state"), extra: map[string]string{
		config.EnvKindVersion: customKindVersion,
		config.EnvKubectlPath: "/usr/bin/kubectl",
		config.EnvNodeImage:   custom,
	}})
	c.up()
	t.Run("README get nodes", func(t *testing.T) { checkGetNodes(t, c) })
	t.Run("kind and node image in use", func(t *testing.T) {
		out, _, err := c.run("status", syncTimeout)
		if err != nil || !strings.Contains(out, "(kind "+customKindVersion+", docker)") {
			t.Errorf("make status: %v, want kind %s:\n%s", err, customKindVersion, tail(out, 20))
		}
		img := dockerT(t, "inspect", "--format", "{{.Config.Image}}", c.controlPlane())
		if strings.TrimSpace(img) != custom {
			t.Errorf("%s runs %s, want %s", c.controlPlane(), img, custom)
		}
	})
	t.Run("one PF per worker (the default)", func(t *testing.T) { pfs.checkHeld(t, c, 1) })
	c.down()
	checkGone(t, c)
	pfs.checkBack(t)
	if hs, err := cgroupv1.Find("/proc"); err != nil || len(hs) > 0 {
		t.Errorf("kind %s's nodes left cgroup v1 hierarchies after cluster-down (%v): %v", customKindVersion, err, hs)
	}
}
