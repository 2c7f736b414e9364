package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/config"
)

// The path every user with registry access takes: no component image
// setting, the nodes pull the upstream names (ghcr.io/...). Here they pull
// them through a mirror (REGISTRY_MIRRORS) that the test runs on kind's
// network, the registry image built here, filled with the images built
// here under their upstream names and tags. The node and registry images
// stay local (the host's engine would pull them by digest).
const (
	mirrorContainer = "e2e-mirror"
	mirrorHostPort  = 5055
)

// TestScenarioDefaultImages: first, with CI=true and nothing else, the
// tool points the nodes at kubevirtci CI's proxy, which does not exist
// here: cluster-up must say so at once, naming REGISTRY_PROXY, and change
// nothing. Then a component image the mirror lacks: cluster-up must fail
// within a minute of its deployment, naming the setting and the kubelet's
// message, and cluster-down must clean up. Then the defaults: the
// components run from the upstream names, pulled through the mirror (its
// log shows each manifest asked for on behalf of ghcr.io).
func TestScenarioDefaultImages(t *testing.T) {
	requireE2E(t)
	requireNoCluster(t, "sriov")
	upstream := map[string]string{} // upstream name → image built here
	for _, s := range []images.UpstreamSource{images.Components122.Multus, images.Components122.SRIOVCNI, images.Components122.SRIOVDevicePlugin} {
		upstream[s.UpstreamImage()] = s.Image()
		if _, err := docker(context.Background(), "image", "inspect", s.UpstreamImage()); err == nil {
			t.Fatalf("the engine has %s: the tool would load it into the nodes, and nothing would be pulled", s.UpstreamImage())
		}
	}
	startMirror(t, upstream)
	pfs := newPFSet(t, "e2edpf", 0xa7, 1)
	newDefaults := func(extra map[string]string) *cluster {
		c := newCluster(t, clusterOpts{nodes: 2, pfs: pfs, stateDir: filepath.Join(t.TempDir(), "sriov-state"), extra: extra})
		for _, k := range []string{config.EnvMultusImage, config.EnvSRIOVCNIImage, config.EnvSRIOVDevicePluginImage} {
			delete(c.env, k)
		}
		for k, v := range extra {
			c.env[k] = v
		}
		return c
	}
	mirrors := "ghcr.io=http://" + mirrorContainer + ":5000"

	t.Run("CI proxy that does not answer", func(t *testing.T) {
		c := newDefaults(map[string]string{"CI": "true", config.EnvRegistryProxy: ""})
		out, d, err := c.run("cluster-up", time.Minute)
		if err == nil {
			t.Fatal("cluster-up went on with no proxy answering")
		}
		c.markDown()
		for _, want := range []string{
			`REGISTRY_PROXY="` + config.DefaultCIRegistryProxy + `" (the default): CI=true points the nodes at kubevirtci CI's registry proxy, which does not answer`,
			"set REGISTRY_PROXY=off to pull without a proxy",
			"Nothing was changed",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the output lacks %q:\n%s", want, tail(out, 20))
			}
		}
		if d > 30*time.Second {
			t.Errorf("cluster-up took %s to refuse, want under 30s", d.Round(time.Second))
		}
		checkGone(t, c)
	})

	t.Run("image the mirror lacks", func(t *testing.T) {
		missing := strings.Replace(images.Components122.SRIOVCNI.UpstreamImage(), ":"+images.Components122.SRIOVCNI.Tag, ":v0.0.0-missing", 1)
		c := newDefaults(map[string]string{config.EnvRegistryMirrors: mirrors, config.EnvSRIOVCNIImage: missing})
		out, d, err := c.run("cluster-up", upTimeout)
		if err == nil {
			t.Fatal("cluster-up succeeded with an image that cannot be pulled")
		}
		t.Logf("cluster-up failed after %s", d.Round(time.Second))
		for _, want := range []string{
			"what is left will not heal by waiting",
			"(image " + missing + ")",
			"The images of these containers are set by " + config.EnvSRIOVCNIImage + "=" + missing,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the output lacks %q:\n%s", want, tail(out, 40))
			}
		}
		if strings.Contains(out, "The images of these containers are set by "+config.EnvMultusImage) {
			t.Errorf("the error blames MULTUS_IMAGE, whose image was pulled:\n%s", tail(out, 40))
		}
		m := regexp.MustCompile(`✗ wait for the multus, sriov-cni and device plugin DaemonSets \(([^)]+)\)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no failed DaemonSet wait in the output:\n%s", tail(out, 40))
		}
		if w, err := time.ParseDuration(m[1]); err != nil || w > 90*time.Second {
			t.Errorf("the wait gave up after %s, want within a minute or so (%v)", m[1], err)
		}
		checkMirrorAsked(t, missing)
		c.down()
		checkGone(t, c)
		pfs.checkBack(t)
	})

	t.Run("defaults through the mirror", func(t *testing.T) {
		c := newDefaults(map[string]string{config.EnvRegistryMirrors: mirrors})
		out, _, err := c.run("cluster-up", upTimeout)
		if err != nil {
			t.Fatalf("cluster-up: %v\n%s", err, tail(out, 40))
		}
		if strings.Contains(out, "loaded from") {
			t.Errorf("cluster-up loaded component images from the engine; they had to be pulled:\n%s", tail(out, 20))
		}
		if !strings.Contains(out, "mirror:      ghcr.io images from http://"+mirrorContainer+":5000 first") {
			t.Errorf("the summary does not show the mirror:\n%s", tail(out, 20))
		}
		checkComponentPods(t, c, c.workers())
		pods, err := c.client().CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ran := map[string]bool{}
		for _, p := range pods.Items {
			for _, ct := range p.Spec.Containers {
				ran[ct.Image] = true
			}
		}
		for up := range upstream {
			if !ran[up] {
				t.Errorf("no pod runs %s", up)
			}
			checkMirrorAsked(t, up)
		}
		for _, n := range c.nodeNames() {
			if out := dockerT(t, "exec", n, "cat", "/etc/containerd/certs.d/ghcr.io/hosts.toml"); !strings.Contains(out, `server = "https://ghcr.io"`) || !strings.Contains(out, `[host."http://`+mirrorContainer+`:5000"]`) {
				t.Errorf("%s: ghcr.io's hosts.toml:\n%s", n, out)
			}
		}
		c.down()
		checkGone(t, c)
		pfs.checkBack(t)
	})
}

// startMirror runs the registry image on kind's network as
// mirrorContainer (published on 127.0.0.1:mirrorHostPort) and pushes the
// images built here into it under their upstream names (upstream → local).
func startMirror(t *testing.T, upstream map[string]string) {
	t.Helper()
	if _, err := docker(context.Background(), "network", "inspect", "kind"); err != nil {
		dockerT(t, "network", "create", "kind")
	}
	_, _ = docker(context.Background(), "rm", "-f", "-v", mirrorContainer)
	dockerT(t, "run", "-d", "--name", mirrorContainer, "--network", "kind", "-p", fmt.Sprintf("127.0.0.1:%d:5000", mirrorHostPort), registryImage)
	t.Cleanup(func() { _, _ = docker(context.Background(), "rm", "-f", "-v", mirrorContainer) })
	if err := eventually(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v2/", mirrorHostPort))
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		t.Fatalf("the mirror does not answer: %v", err)
	}
	for up, local := range upstream {
		ref, err := name.ParseReference(up)
		if err != nil {
			t.Fatal(err)
		}
		tag := fmt.Sprintf("127.0.0.1:%d/%s:%s", mirrorHostPort, ref.Context().RepositoryStr(), ref.Identifier())
		dockerT(t, "tag", local, tag)
		dockerT(t, "push", tag)
		dockerT(t, "rmi", tag)
	}
}

// checkMirrorAsked: the mirror's log shows a node asking it for image's
// manifest on behalf of the image's registry (containerd adds ?ns=<host>
// to what it asks a mirror).
func checkMirrorAsked(t *testing.T, image string) {
	t.Helper()
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("/v2/%s/manifests/%s?ns=%s", ref.Context().RepositoryStr(), ref.Identifier(), ref.Context().RegistryStr())
	logs, _ := docker(context.Background(), "logs", mirrorContainer)
	if !strings.Contains(logs, want) {
		t.Errorf("the mirror was never asked for %s (%s); its log ends:\n%s", image, want, tail(logs, 10))
	}
}
