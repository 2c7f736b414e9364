//go:build linux

package cgroupv1

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kubevirt/kubevirtci-go/internal/testlevel"
)

// On the real kernel: a hierarchy made as a kind 0.11.1 node makes it (a
// v1 mount of a controller the host does not mount, cgroups made in it,
// the mount gone) is found, and Remove gives the controller back.
func TestKernelFindAndRemove(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test on the real kernel: skipped under -short")
	}
	if os.Geteuid() != 0 {
		testlevel.Unavailable(t, "integration test on the real kernel: needs root to mount cgroup hierarchies")
	}
	ctl, dir := freeController(t)
	if ctl == "" {
		// A cgroup v2-only host (every controller in use by the unified
		// hierarchy) cannot have such leftovers: nothing to test there.
		t.Skip("no cgroup v1 controller that the host leaves unused (a cgroup v2-only host): nothing to leave behind")
	}
	for _, d := range []string{"kubelet/kubepods/burstable", "kubelet/kubepods/besteffort", "docker"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	hs, err := Find("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found *Hierarchy
	for i, h := range hs {
		if strings.Join(h.Controllers, ",") == ctl {
			found = &hs[i]
		}
	}
	if found == nil || found.Cgroups != 6 {
		t.Fatalf("Find: %v, want %s with 6 cgroups", hs, ctl)
	}
	if err := Remove([]Hierarchy{*found}); err != nil {
		t.Fatal(err)
	}
	hs, err = Find("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.ID == found.ID {
			t.Fatalf("after Remove the hierarchy is still there: %v", h)
		}
	}
}

// freeController mounts a v1 hierarchy of a controller that no hierarchy
// uses (hierarchy 0 in /proc/cgroups and not enabled in the unified one)
// and returns it with the mount point, or "" when there is none.
func freeController(t *testing.T) (string, string) {
	b, err := os.ReadFile("/proc/cgroups")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[1] != "0" || f[3] != "1" {
			continue
		}
		dir := t.TempDir()
		if err := unix.Mount("cgroup", dir, "cgroup", 0, f[0]); err == nil {
			t.Cleanup(func() { unix.Unmount(dir, 0) })
			return f[0], dir
		}
	}
	return "", ""
}
