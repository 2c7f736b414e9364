package sriovvm

// TestSRIOVVM builds the guest's programs, boots the VM and reports each
// of the guest's tests (internal/sriov, build tag sriovvm) as a subtest:
// a case fails here when it failed in the VM or did not run.
//
// What is real: the kernel (Debian's), its igb, igbvf and vfio-pci drivers,
// sysfs, netlink, network namespaces, vfio groups, the device plugin and
// sriov-cni built from source (the versions of both providers: v3.4.0 and
// v2.7.0 for kind-1.22-sriov, v3.9.0 and v2.9.0 for kind-sriov). What is emulated: the NIC (QEMU's igb) and
// the IOMMU (QEMU's intel-iommu).
//
// Environment (scripts/e2e-sriov-vm.sh sets it):
//
//	KUBEVIRTCI_SRIOV_VM=1  run (otherwise the test skips)
//	SRIOV_VM_KERNEL_DIR    an unpacked Debian linux-image package (scripts/vm-setup.sh)
//	SRIOV_VM_ACCEL         kvm or tcg to skip the detection
//	SRIOV_VM_RUN           a -test.run pattern for the guest (debugging)
//	SRIOV_DEBUG            print the SR-IOV steps' details in the guest
//	SRIOV_VM_SEED          replay TestVMInterrupted's step boundaries (its log gives the seed)

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/nodeimage"
	"github.com/kubevirt/kubevirtci-go/internal/step"
)

// guestTests are the tests the VM must run and pass (in internal/sriov).
var guestTests = []string{
	"TestVMDiscover", "TestVMUpAndReturn", "TestVMTooManyVFs", "TestVMReturnRestoresVFs",
	"TestVMNodeDies", "TestVMInterrupted", "TestVMClusterDownVFHeld", "TestVMDevicePlugin",
}

// componentSets are the providers' component sets whose device plugin and
// sriov-cni TestVMDevicePlugin runs, each as a subtest of its own.
var componentSets = []images.Components{images.Components122, images.Components136}

// guestPaths are the paths of a set's device plugin and sriov-cni in the
// guest, and the name of the guest's subtest that runs them.
func guestPaths(c images.Components) (dp, cni, subtest string) {
	dp, cni = "/bin/sriovdp-"+c.SRIOVDevicePlugin.Tag, "/bin/sriov-"+c.SRIOVCNI.Tag
	return dp, cni, "TestVMDevicePlugin/" + filepath.Base(dp) + "+" + filepath.Base(cni)
}

// modules are loaded in this order (dependencies first).
var modules = []string{
	"drivers/dca/dca.ko", "drivers/i2c/algos/i2c-algo-bit.ko",
	"drivers/net/ethernet/intel/igb/igb.ko", "drivers/net/ethernet/intel/igbvf/igbvf.ko",
	"virt/lib/irqbypass.ko", "drivers/vfio/vfio.ko", "drivers/vfio/vfio_iommu_type1.ko",
	"drivers/vfio/vfio_virqfd.ko", "drivers/vfio/pci/vfio-pci-core.ko", "drivers/vfio/pci/vfio-pci.ko",
	"drivers/net/veth.ko",
}

const pfCount = 4

const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "kubevirtci-vm: init"
for m in $(cat /modules.order); do
	insmod /lib/modules/$m || echo "kubevirtci-vm: insmod $m failed"
done
i=0
while [ $(ls -d /sys/class/net/eth* 2>/dev/null | wc -l) -lt %d ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
echo "kubevirtci-vm: $(ls /sys/class/net | tr '\n' ' ')"
cd /tmp
%s SRIOV_VM_COMPONENTS='%s' /bin/sriov.test -test.v -test.count=1 -test.timeout=9m -test.run '%s'
echo "kubevirtci-vm: exit $?"
poweroff -f
`

func TestSRIOVVM(t *testing.T) {
	if os.Getenv("KUBEVIRTCI_SRIOV_VM") != "1" {
		t.Skip("the SR-IOV VM suite: run it with make e2e-sriov-vm (KUBEVIRTCI_SRIOV_VM=1)")
	}
	kdir := os.Getenv("SRIOV_VM_KERNEL_DIR")
	if kdir == "" {
		t.Fatal("SRIOV_VM_KERNEL_DIR is not set: it names an unpacked Debian linux-image package (scripts/vm-setup.sh prints one)")
	}
	for _, need := range []string{"qemu-system-x86_64"} {
		if _, err := exec.LookPath(need); err != nil {
			t.Fatalf("%s is missing: run scripts/vm-setup.sh (QEMU >= 8.0 for igb)", need)
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := nodeimage.FindModuleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	work := t.TempDir()
	start := time.Now()

	// The guest's programs: the tests, the device plugin and sriov-cni.
	guest := filepath.Join(work, "sriov.test")
	build := exec.Command("go", "test", "-c", "-tags", "sriovvm", "-o", guest, "./internal/sriov")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the guest's tests: %v\n%s", err, out)
	}
	// SRIOV_VM_COMPONENTS: "<device plugin>,<sriov-cni> ..." for each set.
	var pairs []string
	guestBins := map[string]string{}
	for _, set := range componentSets {
		bins, err := nodeimage.ComponentBinaries(ctx, nodeimage.Options{CRI: "docker", SourceDir: repo, Log: step.New(os.Stderr, false), Components: set})
		if err != nil {
			t.Fatal(err)
		}
		dp, cni, _ := guestPaths(set)
		guestBins[dp], guestBins[cni] = bins["sriovdp"], bins["sriov"]
		pairs = append(pairs, dp+","+cni)
	}

	vmlinuz, moddir, err := kernelFiles(kdir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]file{
		"/init":                           {Mode: 0o755, Data: []byte(fmt.Sprintf(initScript, pfCount, guestEnv(), strings.Join(pairs, " "), guestRun()))},
		"/bin/busybox":                    {Mode: 0o755, Src: "/bin/busybox"},
		"/bin/sriov.test":                 {Mode: 0o755, Src: guest},
		"/usr/share/misc/pci.ids":         {Mode: 0o644, Src: "/usr/share/misc/pci.ids"},
		"/usr/share/hwdata/pci.ids":       {Linkname: "../misc/pci.ids"},
		"/var/lib/kubelet/device-plugins": {Dir: true, Mode: 0o755},
		"/var/lib/cni":                    {Dir: true, Mode: 0o755},
		"/proc":                           {Dir: true, Mode: 0o755},
		"/sys":                            {Dir: true, Mode: 0o755},
		"/dev":                            {Dir: true, Mode: 0o755},
		"/tmp":                            {Dir: true, Mode: 0o1777},
		"/run":                            {Dir: true, Mode: 0o755},
	}
	for p, src := range guestBins {
		files[p] = file{Mode: 0o755, Src: src}
	}
	var order []string
	for _, m := range modules {
		name := filepath.Base(m)
		files["/lib/modules/"+name] = file{Mode: 0o644, Src: filepath.Join(moddir, "kernel", m)}
		order = append(order, name)
	}
	files["/modules.order"] = file{Mode: 0o644, Data: []byte(strings.Join(order, "\n") + "\n")}
	for p, f := range files {
		if f.Src != "" {
			if _, err := os.Stat(f.Src); err != nil {
				t.Fatalf("initramfs file %s: %v (scripts/vm-setup.sh installs busybox-static, pci.ids and the kernel)", p, err)
			}
		}
	}
	initrd := filepath.Join(work, "initrd.cpio")
	f, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeInitramfs(f, files); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("guest prepared in %s (kernel %s)", time.Since(start).Round(100*time.Millisecond), vmlinuz)

	accel := accelerator(t, vmlinuz, initrd)
	start = time.Now()
	out, err := boot(t, accel, vmlinuz, initrd, 12*time.Minute, nil)
	t.Logf("VM (%s) ran for %s", accel, time.Since(start).Round(100*time.Millisecond))
	if err != nil {
		t.Errorf("the VM: %v", err)
	}
	report(t, out)
}

// guestRun selects the guest's tests: all of guestTests, or those that
// SRIOV_VM_RUN matches (to debug one; the others then count as not run).
func guestRun() string {
	if r := os.Getenv("SRIOV_VM_RUN"); r != "" {
		return r
	}
	return "^(" + strings.Join(guestTests, "|") + ")$"
}

// guestEnv passes SRIOV_DEBUG (the package's step details) and
// SRIOV_VM_SEED (TestVMInterrupted's choice of step boundaries) to the
// guest.
func guestEnv() string {
	var env []string
	if os.Getenv("SRIOV_DEBUG") != "" {
		env = append(env, "SRIOV_DEBUG=1")
	}
	if s := os.Getenv("SRIOV_VM_SEED"); s != "" {
		if _, err := strconv.ParseInt(s, 10, 64); err == nil {
			env = append(env, "SRIOV_VM_SEED="+s)
		}
	}
	return strings.Join(env, " ")
}

// report turns the guest's `go test -v` output into one subtest per case,
// and one per component set of TestVMDevicePlugin.
func report(t *testing.T, out string) {
	t.Helper()
	result := map[string]string{}
	re := regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (TestVM[\w/+.-]+) \(([0-9.]+s)\)`)
	for _, l := range strings.Split(out, "\n") {
		if m := re.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			result[m[2]] = m[1] + " in " + m[3]
		}
	}
	exit := regexp.MustCompile(`kubevirtci-vm: exit (\d+)`).FindStringSubmatch(out)
	if exit == nil {
		t.Errorf("the guest's tests did not finish (no exit line)")
	} else if exit[1] != "0" {
		t.Errorf("the guest's tests exited %s", exit[1])
	}
	cases := append([]string(nil), guestTests...)
	for _, set := range componentSets {
		_, _, sub := guestPaths(set)
		cases = append(cases, sub)
	}
	for _, name := range cases {
		t.Run(name, func(t *testing.T) {
			r, ok := result[name]
			switch {
			case !ok:
				t.Errorf("%s did not run in the VM", name)
			case !strings.HasPrefix(r, "PASS"):
				t.Errorf("%s: %s in the VM", name, r)
			default:
				t.Logf("%s: %s in the VM", name, r)
			}
		})
	}
}

// kernelFiles finds vmlinuz and the module folder in an unpacked
// linux-image package.
func kernelFiles(dir string) (vmlinuz, moddir string, err error) {
	k, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	m, _ := filepath.Glob(filepath.Join(dir, "lib", "modules", "*"))
	if len(k) != 1 || len(m) != 1 {
		return "", "", fmt.Errorf("%s holds %d kernels and %d module folders, want one of each (SRIOV_VM_KERNEL_DIR: an unpacked linux-image package)", dir, len(k), len(m))
	}
	return k[0], m[0], nil
}

// qemuArgs is the VM: q35 with an emulated IOMMU (VFs get IOMMU groups),
// pfCount igb NICs, each behind its own PCIe root port, on a QEMU hub that
// leads nowhere (the tests send no traffic out of the VM).
func qemuArgs(accel, vmlinuz, initrd string) []string {
	args := []string{
		"-accel", accel, "-cpu", "max", "-m", "1536", "-smp", "2",
		"-machine", "q35,kernel-irqchip=split",
		"-device", "intel-iommu,intremap=on,caching-mode=on",
		"-kernel", vmlinuz, "-initrd", initrd,
		"-append", "console=ttyS0 intel_iommu=on quiet panic=-1 rdinit=/init",
		"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
	}
	for i := 1; i <= pfCount; i++ {
		args = append(args,
			"-device", fmt.Sprintf("pcie-root-port,id=rp%d,chassis=%d", i, i),
			"-netdev", fmt.Sprintf("hubport,id=n%d,hubid=0", i),
			"-device", fmt.Sprintf("igb,bus=rp%d,netdev=n%d", i, i))
	}
	return args
}

// boot runs the VM until it powers off or timeout passes, streaming the
// console into the test log; booted, when set, is told once the guest's
// init speaks.
func boot(t *testing.T, accel, vmlinuz, initrd string, timeout time.Duration, booted chan<- struct{}) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", qemuArgs(accel, vmlinuz, initrd)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", err
	}
	var out strings.Builder
	var once sync.Once
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		out.WriteString(l + "\n")
		if booted == nil {
			t.Log("vm: " + l)
		} else if strings.Contains(l, "kubevirtci-vm: init") {
			once.Do(func() { close(booted) })
		}
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		return out.String(), fmt.Errorf("no power-off within %s (qemu %s)", timeout, strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		return out.String(), fmt.Errorf("qemu: %v\n%s", err, stderr.String())
	}
	return out.String(), nil
}

// accelerator is kvm when /dev/kvm boots this guest, else tcg. Some hosts
// have a /dev/kvm (nested, paravirtual) on which a stock guest hangs after
// decompression: the guest gets 20 s to reach its init under KVM, and the
// verdict is kept in the cache for the same QEMU and kernel.
func accelerator(t *testing.T, vmlinuz, initrd string) string {
	if a := os.Getenv("SRIOV_VM_ACCEL"); a != "" {
		return a
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		t.Logf("no usable /dev/kvm (%v): TCG", err)
		return "tcg"
	}
	f.Close()
	ver, _ := exec.Command("qemu-system-x86_64", "--version").Output()
	cache := filepath.Join(nodeimage.DefaultCacheDir(os.Getenv), "vm", "kvm-verdict")
	key := strings.SplitN(string(ver), "\n", 2)[0] + " " + filepath.Base(vmlinuz)
	if b, err := os.ReadFile(cache); err == nil {
		if k, v, ok := strings.Cut(strings.TrimSpace(string(b)), "\t"); ok && k == key {
			t.Logf("KVM verdict from %s: %s", cache, v)
			return v
		}
	}
	booted := make(chan struct{})
	verdict := make(chan string, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		select {
		case <-booted:
			verdict <- "kvm"
		case <-ctx.Done():
			verdict <- "tcg"
		}
	}()
	probe := exec.CommandContext(ctx, "qemu-system-x86_64", qemuArgs("kvm", vmlinuz, initrd)...)
	stdout, _ := probe.StdoutPipe()
	if err := probe.Start(); err == nil {
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if strings.Contains(sc.Text(), "kubevirtci-vm: init") {
					close(booted)
					return
				}
			}
		}()
	}
	v := <-verdict
	cancel()
	if probe.Process != nil {
		probe.Process.Kill()
		probe.Wait()
	}
	t.Logf("KVM probe: %s (the guest under KVM %s)", v, map[string]string{"kvm": "reached its init", "tcg": "did not reach its init in 20 s"}[v])
	_ = os.MkdirAll(filepath.Dir(cache), 0o755)
	_ = os.WriteFile(cache, []byte(key+"\t"+v+"\n"), 0o644)
	return v
}
