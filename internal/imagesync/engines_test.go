package imagesync

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/testlevel"
)

// containerdAddress is a containerd socket to pull with: CONTAINERD_ADDRESS,
// else the usual places (the system's, docker's own). A socket file whose
// daemon has gone (left behind by a dockerd that was killed) is not one.
func containerdAddress() string {
	if a := os.Getenv("CONTAINERD_ADDRESS"); a != "" {
		return a
	}
	for _, a := range []string{"/run/containerd/containerd.sock", "/var/run/docker/containerd/containerd.sock"} {
		c, err := net.DialTimeout("unix", a, time.Second)
		if err == nil {
			c.Close()
			return a
		}
	}
	return ""
}

// What sync pushes, gzip or uncompressed, is pulled and unpacked by real
// clients: containerd (what kind nodes run) and docker. Needs ctr and a
// containerd socket, or docker; skipped under -short.
func TestEnginesPullWhatSyncPushed(t *testing.T) {
	if testing.Short() {
		t.Skip("pulls with containerd and docker; runs without -short")
	}
	addr := containerdAddress()
	_, ctrErr := exec.LookPath("ctr")
	hasCtr := ctrErr == nil && addr != ""
	hasDocker := exec.Command("docker", "version", "--format", "{{.Server.Version}}").Run() == nil
	if !hasCtr && !hasDocker {
		testlevel.Unavailable(t, "neither ctr with a containerd socket nor a docker engine is available (scripts/host-setup.sh starts docker)")
	}
	if hasCtr {
		t.Cleanup(func() { exec.Command("ctr", "--address", addr, "namespaces", "rm", "kubevirtci-imagesync-test").Run() })
	}
	reg := newTestRegistry(t)
	img := randomImage(t, 256*kib, 2)
	id := mustConfigName(t, img).String()
	for _, comp := range []string{CompressGzip, CompressNone} {
		t.Run(comp, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "x.tar")
			writeDockerSave(t, f, img, "kubevirt/pull-"+comp+":devel")
			log, _ := logger()
			res, err := Sync(context.Background(), Options{Sources: []string{f}, Registry: reg.host, Compression: comp, Log: log})
			must(t, err)
			ref := reg.host + "/kubevirt/pull-" + comp + "@" + res.Images[0].Digest.String()
			if hasCtr {
				const ns = "kubevirtci-imagesync-test"
				ctr := func(args ...string) (string, error) {
					out, err := exec.Command("ctr", append([]string{"--address", addr, "-n", ns}, args...)...).CombinedOutput()
					return string(out), err
				}
				t.Cleanup(func() { ctr("images", "rm", "--sync", ref) })
				out, err := ctr("images", "pull", "--plain-http", ref)
				if err != nil {
					t.Fatalf("ctr pull %s: %v\n%s", ref, err, out)
				}
				// ctr pull unpacks into the default snapshotter, as the
				// CRI plugin of a node does before a container starts.
				if !strings.Contains(out, "unpacking") || !strings.Contains(out, "done") {
					t.Errorf("ctr pull did not unpack:\n%s", out)
				}
				out, err = ctr("images", "check")
				if err != nil || !strings.Contains(out, ref) || !strings.Contains(out, "complete") {
					t.Errorf("ctr images check: %v\n%s", err, out)
				}
			}
			if hasDocker {
				t.Cleanup(func() { exec.Command("docker", "rmi", "-f", ref).Run() })
				if out, err := exec.Command("docker", "pull", ref).CombinedOutput(); err != nil {
					t.Fatalf("docker pull %s: %v\n%s", ref, err, out)
				}
				out, err := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", ref).Output()
				if err != nil || strings.TrimSpace(string(out)) != id {
					t.Errorf("docker sees image ID %q (%v), want the source's %s", strings.TrimSpace(string(out)), err, id)
				}
			}
		})
	}
}
