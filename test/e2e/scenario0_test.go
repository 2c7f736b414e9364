package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/cgroupv1"
	"github.com/kubevirt/kubevirtci-go/internal/config"
)

// customKindVersion is the kind release the old provider pinned.
const customKindVersion = "0.11.1"

// TestScenarioCustomKind is the old README's "Setting a custom kind
// version", with values that exist offline: KIND_VERSION=0.11.1 (the tool
// builds that release with go install from the module proxy), KUBECTL_PATH
// a kubectl that only the custom node image has, at a path of its own (a
// copy of the node's kubectl with a marker appended: the one the tool
// copies out must be that one, not /usr/bin/kubectl), and KIND_NODE_IMAGE
// that image; PF_COUNT_PER_NODE is left at its default. A KUBECTL_PATH the
// image lacks is refused by name first, before anything is created. Cluster up,
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
	const kubectlPath, marker = "/opt/e2e-kubectl/kubectl", "\n# e2e: the kubectl at KUBECTL_PATH\n"
	customNodeImage(t, custom, kubectlPath, marker)
	pfs := newPFSet(t, "e2ekpf", 0xb6, 1)
	c := newCluster(t, clusterOpts{nodes: 2, pfs: pfs, stateDir: filepath.Join(t.TempDir(), "sriov-state"), extra: map[string]string{
		config.EnvKindVersion: customKindVersion,
		config.EnvKubectlPath: "/opt/e2e-kubectl/nope",
		config.EnvNodeImage:   custom,
	}})
	t.Run("KUBECTL_PATH the image lacks", func(t *testing.T) {
		out, d, err := c.run("cluster-up", 2*time.Minute)
		c.markDown()
		if err == nil || !strings.Contains(out, `KUBECTL_PATH="/opt/e2e-kubectl/nope": no such file in the node image `+custom) || !strings.Contains(out, "Nothing was changed") {
			t.Errorf("cluster-up with a wrong KUBECTL_PATH: %v after %s:\n%s", err, d.Round(time.Second), tail(out, 20))
		}
		checkGone(t, c)
	})
	c.env[config.EnvKubectlPath] = kubectlPath
	c.up()
	t.Run("kubectl from KUBECTL_PATH", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(c.stateFolder(), ".kubectl"))
		if err != nil || !bytes.HasSuffix(b, []byte(marker)) {
			t.Errorf("the kubectl copied out of the node is not the one at KUBECTL_PATH=%s (%v)", kubectlPath, err)
		}
	})
	t.Run("README get nodes", func(t *testing.T) { checkGetNodes(t, c) })
	t.Run("kind and node image in use", func(t *testing.T) {
		out, _, err := c.run("status", syncTimeout)
		if err != nil || !strings.Contains(out, "(kind "+customKindVersion+", docker)") {
			t.Errorf("make status: %v, want kind %s:\n%s", err, customKindVersion, tail(out, 20))
		}
		// The node image itself, or the one made from it with the local
		// component images preloaded, which names it in a label.
		img := strings.TrimSpace(dockerT(t, "inspect", "--format", "{{.Config.Image}}", c.controlPlane()))
		from := img
		if img != custom {
			from = strings.TrimSpace(dockerT(t, "image", "inspect", "--format", `{{index .Config.Labels "io.kubevirtci.preload.node"}}`, img))
		}
		if from != custom {
			t.Errorf("%s runs %s (made from %q), want %s or a preload made from it", c.controlPlane(), img, from, custom)
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

// customNodeImage makes image from the node image, with a copy of its
// kubectl at path, marker appended (an ELF file runs with bytes after it).
func customNodeImage(t *testing.T, image, path, marker string) {
	t.Helper()
	tmp := "e2e-custom-node"
	_, _ = docker(context.Background(), "rm", "-f", tmp)
	dockerT(t, "create", "--name", tmp, nodeImage)
	defer docker(context.Background(), "rm", "-f", tmp)
	dir := t.TempDir()
	dockerT(t, "cp", "-L", tmp+":/usr/bin/kubectl", filepath.Join(dir, "kubectl"))
	f, err := os.OpenFile(filepath.Join(dir, "kubectl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(marker); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dockerT(t, "cp", dir+"/.", tmp+":"+filepath.Dir(path))
	dockerT(t, "commit", tmp, image)
	t.Cleanup(func() { _, _ = docker(context.Background(), "rmi", image) })
}
