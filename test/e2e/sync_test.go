package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubevirt/kubevirtci-go/internal/config"
)

// helloImage is the image the suite builds and syncs: it matches the
// default DOCKER_PREFIX and DOCKER_TAG.
const helloImage = "kubevirt/e2e-hello:devel"

// buildHelloImage compiles testdata/hello as a static binary, packs it with
// a fresh run ID into a one-layer image with go-containerregistry, and
// loads it into the docker engine as kubevirt/e2e-hello:devel. It returns
// the run ID; a cleanup removes the image from the engine.
func buildHelloImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "hello")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./test/e2e/testdata/hello")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build hello: %v\n%s", err, out)
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	idb := make([]byte, 8)
	_, _ = rand.Read(idb)
	runID := hex.EncodeToString(idb)

	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"hello", 0o755, exe}, {"run-id", 0o644, []byte(runID + "\n")}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	raw := layer.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{"/hello"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(helloImage)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "hello.tar")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		t.Fatal(err)
	}
	out := dockerT(t, "load", "-i", archive)
	t.Logf("docker load: %s (run ID %s)", out, runID)
	t.Cleanup(func() {
		if out, err := docker(context.Background(), "rmi", helloImage); err != nil {
			t.Logf("cleanup: %v: %s", err, out)
		}
	})
	return runID
}

var sentRE = regexp.MustCompile(`\((\d+) bytes sent\)`)

// checkSync runs `make cluster-sync` with the hello Deployment as
// SYNC_MANIFESTS and checks that the pod runs the image built here from
// registry:5000/kubevirt/e2e-hello@sha256:<the digest in the registry>.
// A second sync of the unchanged image must send nothing. It returns the
// image reference the pod runs.
func checkSync(t *testing.T, c *cluster, runID string) string {
	t.Helper()
	c.env[config.EnvSyncManifests] = filepath.Join(repoRoot, "test", "e2e", "testdata", "hello-deployment.yaml")
	defer delete(c.env, config.EnvSyncManifests)
	out, d, err := c.run("cluster-sync", syncTimeout)
	if err != nil {
		t.Fatalf("make cluster-sync: %v", err)
	}
	t.Logf("make cluster-sync took %s", d.Round(time.Second))

	ref, err := name.ParseReference(fmt.Sprintf("localhost:%d/%s", c.hostPort(), helloImage), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatalf("the registry has no %s: %v\nsync output:\n%s", ref, err, out)
	}
	want := "registry:5000/kubevirt/e2e-hello@" + desc.Digest.String()
	t.Logf("pushed %s as %s", helloImage, want)

	cs := c.client()
	ctx := context.Background()
	dep, err := cs.AppsV1().Deployments("default").Get(ctx, "e2e-hello", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Deployment e2e-hello: %v", err)
	}
	if got := dep.Spec.Template.Spec.Containers[0].Image; got != want {
		t.Errorf("Deployment e2e-hello image %q, want %q", got, want)
	}
	if p := dep.Spec.Template.Spec.Containers[0].ImagePullPolicy; p == corev1.PullAlways {
		t.Errorf("Deployment e2e-hello has imagePullPolicy Always; a digest needs none")
	}
	var pod corev1.Pod
	err = eventually(3*time.Minute, time.Second, func() (bool, error) {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=e2e-hello"})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready {
				pod = p
				return true, nil
			}
		}
		return false, fmt.Errorf("no Ready e2e-hello pod among %d", len(pods.Items))
	})
	if err != nil {
		t.Fatalf("e2e-hello pod: %v", err)
	}
	st := pod.Status.ContainerStatuses[0]
	if !strings.HasSuffix(st.ImageID, desc.Digest.String()) {
		t.Errorf("pod %s runs image ID %s, want one ending in %s", pod.Name, st.ImageID, desc.Digest)
	}
	err = eventually(time.Minute, time.Second, func() (bool, error) {
		logs, err := c.kubectl("logs", "-n", "default", pod.Name)
		if err != nil {
			return false, err
		}
		if !strings.Contains(logs, "run "+runID) {
			return false, fmt.Errorf("logs of %s: %q, want run %s", pod.Name, logs, runID)
		}
		return true, nil
	})
	if err != nil {
		t.Error(err)
	} else {
		t.Logf("pod %s on %s runs image %s and printed run %s", pod.Name, pod.Spec.NodeName, st.ImageID, runID)
	}

	out, _, err = c.run("cluster-sync", syncTimeout)
	if err != nil {
		t.Fatalf("second make cluster-sync: %v", err)
	}
	if m := sentRE.FindStringSubmatch(out); m == nil || m[1] != "0" {
		t.Errorf("second cluster-sync of an unchanged image should send nothing; its summary: %v", m)
	}
	return want
}
