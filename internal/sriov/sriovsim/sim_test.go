package sriovsim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readlink(t *testing.T, p string) string {
	t.Helper()
	s, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTreeLayout(t *testing.T) {
	root := t.TempDir()
	s, err := New(root, []PF{{Name: "kvt0p0"}, {Name: "kvt0p1", PCI: "0000:3b:00.1", TotalVFs: 4, NumVFs: 2}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.PFs()[0].PCI; got != "0000:81:00.0" {
		t.Fatalf("default PCI address %s", got)
	}
	// The paths the kernel has, with link targets ending in the device name.
	for link, want := range map[string]string{
		"class/net/kvt0p0":                                  "../../devices/pci0000:00/0000:81:00.0/net/kvt0p0",
		"class/net/kvt0p0/device":                           "../../../0000:81:00.0",
		"bus/pci/devices/0000:81:00.0":                      "../../../devices/pci0000:00/0000:81:00.0",
		"bus/pci/devices/0000:81:00.0/driver":               "../../../bus/pci/drivers/simnic",
		"bus/pci/devices/0000:3b:00.1/virtfn1":              "../0000:4b:04.1",
		"bus/pci/devices/0000:4b:04.1/physfn":               "../0000:3b:00.1",
		"bus/pci/devices/0000:4b:04.1/driver":               "../../../bus/pci/drivers/simvf",
		"bus/pci/drivers/simvf/0000:4b:04.0":                "../../../../devices/pci0000:00/0000:4b:04.0",
		"kernel/iommu_groups/0/devices/0000:81:00.0":        "../../../../devices/pci0000:00/0000:81:00.0",
		"devices/pci0000:00/0000:3b:00.1/net/kvt0p1/device": "../../../0000:3b:00.1",
	} {
		if got := readlink(t, filepath.Join(root, link)); got != want {
			t.Errorf("%s -> %s, want %s", link, got, want)
		}
	}
	for file, want := range map[string]string{
		"class/net/kvt0p1/device/sriov_totalvfs":          "4",
		"class/net/kvt0p1/device/sriov_numvfs":            "2",
		"class/net/kvt0p1/device/sriov_drivers_autoprobe": "1",
		"bus/pci/devices/0000:4b:04.0/driver_override":    "(null)",
	} {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("%s = %q, %v; want %q", file, b, err, want)
		}
	}
	for _, d := range []string{"bus/pci/drivers/vfio-pci/bind", "bus/pci/drivers/vfio-pci/unbind", "kernel/iommu_groups/1"} {
		if _, err := os.Stat(filepath.Join(root, d)); err != nil {
			t.Error(err)
		}
	}

	if _, err := New(t.TempDir(), []PF{{Name: "a"}, {Name: "a"}}, Options{}); err == nil {
		t.Error("repeated names accepted")
	}
	if _, err := New(t.TempDir(), []PF{{Name: "a", PCI: "0000:81:00.0"}, {Name: "b", PCI: "0000:71:00.0"}}, Options{}); err == nil {
		t.Error("colliding addresses accepted (VFs of b land on a's bus)")
	}
	if _, err := New(root, []PF{{Name: "x"}}, Options{}); err == nil {
		t.Error("a non-empty root accepted")
	}
	s2, err := New(t.TempDir(), []PF{{Name: "a"}}, Options{NoVFIO: true, NoIOMMU: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s2.Root, "bus/pci/drivers/vfio-pci")); err == nil {
		t.Error("NoVFIO: vfio-pci present")
	}
	if g, _ := filepath.Glob(filepath.Join(s2.Root, "kernel/iommu_groups/*")); len(g) != 0 {
		t.Error("NoIOMMU: groups present")
	}
}

func write(t *testing.T, p, v string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond for up to 5s: the simulator reacts asynchronously.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestKernelBehaviour(t *testing.T) {
	s, err := New(t.TempDir(), []PF{{Name: "p0", TotalVFs: 4}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := s.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	pf := filepath.Join(s.Root, "bus/pci/devices/0000:81:00.0")
	numvfs := filepath.Join(pf, "sriov_numvfs")
	exists := func(p string) bool { _, err := os.Lstat(p); return err == nil }

	write(t, numvfs, "3\n")
	waitFor(t, "3 VFs", func() bool { return exists(filepath.Join(pf, "virtfn2")) })
	if len(s.VFs("p0")) != 3 {
		t.Fatalf("VFs %v", s.VFs("p0"))
	}
	vf := s.VFs("p0")[0]
	vfDir := filepath.Join(s.Root, "bus/pci/devices", vf)
	if readlink(t, filepath.Join(vfDir, "driver")) != "../../../bus/pci/drivers/simvf" {
		t.Fatal("autoprobe: the new VF is not bound to its default driver")
	}

	// A non-zero count over a non-zero count is refused (EBUSY) and undone.
	write(t, numvfs, "2")
	waitFor(t, "the refusal", func() bool { return len(s.Errors()) == 1 })
	if b, _ := os.ReadFile(numvfs); strings.TrimSpace(string(b)) != "3" {
		t.Fatalf("sriov_numvfs is %q after a refused write, want 3", b)
	}
	if !strings.Contains(s.Errors()[0].Error(), "busy") {
		t.Fatalf("error %v", s.Errors()[0])
	}

	// vfio-pci refuses a device without driver_override; then binds it.
	write(t, filepath.Join(s.Root, "bus/pci/drivers/simvf/unbind"), vf)
	waitFor(t, "unbind", func() bool { return !exists(filepath.Join(vfDir, "driver")) })
	write(t, filepath.Join(s.Root, "bus/pci/drivers/vfio-pci/bind"), vf)
	waitFor(t, "the bind refusal", func() bool { return len(s.Errors()) == 2 })
	write(t, filepath.Join(vfDir, "driver_override"), "vfio-pci")
	write(t, filepath.Join(s.Root, "bus/pci/drivers/vfio-pci/bind"), vf)
	waitFor(t, "bind", func() bool { return exists(filepath.Join(s.Root, "bus/pci/drivers/vfio-pci", vf)) })
	if got := readlink(t, filepath.Join(vfDir, "driver")); got != "../../../bus/pci/drivers/vfio-pci" {
		t.Fatalf("driver -> %s", got)
	}

	// More than sriov_totalvfs is refused; 0 removes every VF and its links.
	write(t, numvfs, "0")
	waitFor(t, "no VFs", func() bool { return !exists(filepath.Join(pf, "virtfn0")) })
	for _, p := range []string{vfDir, filepath.Join(s.Root, "bus/pci/drivers/vfio-pci", vf), filepath.Join(s.Root, "devices/pci0000:00", vf)} {
		if exists(p) {
			t.Errorf("%s left behind", p)
		}
	}
	write(t, numvfs, "5")
	waitFor(t, "the refusal", func() bool { return len(s.Errors()) == 3 })

	// With autoprobe off, new VFs stay unbound.
	write(t, filepath.Join(pf, "sriov_drivers_autoprobe"), "0")
	write(t, numvfs, "1")
	waitFor(t, "1 VF", func() bool { return exists(filepath.Join(pf, "virtfn0")) })
	if exists(filepath.Join(s.Root, "bus/pci/devices", s.VFs("p0")[0], "driver")) {
		t.Fatal("autoprobe off: the VF got a driver")
	}
}
