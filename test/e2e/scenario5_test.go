package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/config"
)

// TestScenarioPodman runs the provider with CRI_BIN=podman (Debian's podman,
// which `scripts/host-setup.sh --podman` installs and configures, and kind's
// podman provider): a 2-node cluster whose nodes are podman containers, its
// registry published on 127.0.0.1 only, the worker's PF moved in and back,
// and `make cluster-sync` of an image from podman's store that a pod then
// runs from registry:5000.
func TestScenarioPodman(t *testing.T) {
	requireE2E(t)
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatalf("podman is not installed: scripts/host-setup.sh --podman installs it (make e2e runs it): %v", err)
	}
	if out, _ := podmanNodes("-a"); out != "" {
		t.Fatalf("podman runs a kind cluster sriov already: %s", out)
	}
	requireNoCluster(t, "sriov")
	// The images were built in docker: podman has its own store.
	for _, img := range []string{nodeImage, registryImage, multusImage, sriovCNIImage, devicePluginImage} {
		copyToPodman(t, img)
	}
	pfs := newPFSet(t, "e2eppf", 0xb7, 1)
	c := newCluster(t, clusterOpts{nodes: 2, pfs: pfs, stateDir: filepath.Join(t.TempDir(), "sriov-state"),
		extra: map[string]string{config.EnvCRI: "podman"}})
	// The harness's forced clean-up speaks docker: a podman cluster left by
	// a failure is removed here.
	t.Cleanup(func() {
		if names, _ := podmanNodes("-a"); names != "" {
			_, _ = podman(append([]string{"rm", "-f", "-v"}, strings.Fields(names)...)...)
		}
		_, _ = podman("rm", "-f", "-v", c.registry())
	})
	c.up()
	t.Run("README get nodes", func(t *testing.T) { checkGetNodes(t, c) })
	t.Run("nodes are podman containers", func(t *testing.T) {
		out, err := podmanNodes()
		got, want := strings.Fields(out), c.nodeNames()
		sort.Strings(got)
		sort.Strings(want)
		if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("podman's kind nodes: %q (%v), want %v", out, err, c.nodeNames())
		}
	})
	t.Run("registry on loopback", func(t *testing.T) {
		out, err := podman("port", c.registry())
		if want := fmt.Sprintf("5000/tcp -> 127.0.0.1:%d", c.hostPort()); err != nil || out != want {
			t.Errorf("podman port %s: %q (%v), want %q", c.registry(), out, err, want)
		}
	})
	t.Run("PF in the worker", func(t *testing.T) { pfs.checkHeld(t, c, 1) })
	t.Run("README component pods", func(t *testing.T) { checkComponentPods(t, c, c.workers()) })
	t.Run("files", func(t *testing.T) { checkFiles(t, c) })
	t.Run("cluster-sync", func(t *testing.T) {
		const img = "kubevirt/e2e-podman:devel"
		if _, err := podman("tag", registryImage, img); err != nil {
			t.Fatal(err)
		}
		defer podman("rmi", img)
		out, _, err := c.run("cluster-sync", syncTimeout)
		if err != nil {
			t.Fatalf("make cluster-sync: %v", err)
		}
		ref := regexp.MustCompile(`registry:5000/kubevirt/e2e-podman@sha256:[0-9a-f]{64}`).FindString(out)
		if ref == "" {
			t.Fatalf("make cluster-sync printed no registry:5000 reference:\n%s", tail(out, 20))
		}
		if _, err := c.kubectl("run", "e2e-podman", "--image="+ref, "--restart=Never"); err != nil {
			t.Fatal(err)
		}
		if out, err := c.kubectl("wait", "--for=condition=Ready", "pod/e2e-podman", "--timeout=120s"); err != nil {
			t.Errorf("a pod of the synced image: %v\n%s", err, out)
		}
	})
	c.down()
	if out, _ := podmanNodes("-a"); out != "" {
		t.Errorf("podman containers of sriov left: %s", out)
	}
	if _, err := podman("inspect", c.registry()); err == nil {
		t.Errorf("registry %s left", c.registry())
	}
	// The ledger and the cluster's files are gone too (checkGone's
	// container checks speak docker, where nothing of this cluster was).
	t.Run("nothing left", func(t *testing.T) { checkGone(t, c) })
	pfs.checkBack(t)
}

func podman(args ...string) (string, error) {
	return engine(context.Background(), "podman", args...)
}

// podmanNodes lists the names of cluster sriov's kind nodes in podman,
// running ones or, with "-a", all.
func podmanNodes(all ...string) (string, error) {
	args := append([]string{"ps"}, all...)
	return podman(append(args, "--format", "{{.Names}}", "--filter", "label=io.x-k8s.kind.cluster=sriov")...)
}

// copyToPodman copies an image from docker's store to podman's, unless
// podman has it (same ID) already. Podman's copies stay, as a cache for
// the next run; the copy of an image since rebuilt is removed once the
// new one is in, so that rebuilds leave no untagged images behind.
func copyToPodman(t *testing.T, img string) {
	t.Helper()
	id := dockerT(t, "image", "inspect", "--format", "{{.Id}}", img)
	old, err := podman("image", "inspect", "--format", "{{.Id}}", img)
	had := err == nil
	old = strings.TrimPrefix(old, "sha256:")
	if had && "sha256:"+old == id {
		return
	}
	start := time.Now()
	cmd := exec.Command("sh", "-c", "docker save \"$1\" | podman load", "sh", img)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker save %s | podman load: %v\n%s", img, err, out)
	}
	t.Logf("copied %s from docker to podman in %s", img, time.Since(start).Round(100*time.Millisecond))
	if had {
		// Untagged now; a container still using it keeps it (and says so).
		if out, err := podman("rmi", old); err != nil {
			t.Logf("the copy %s replaced (%s) stays in podman's store: %v: %s", img, old, err, out)
		}
	}
}
