//go:build linux && sriovvm

package sriov

// Faults on the real drivers, in the VM of `make e2e-sriov-vm`: the SR-IOV
// part of cluster-up in a process of its own, stopped by real signals at
// random step boundaries, and cluster-down's order while a process in a
// node holds a VF open through VFIO, as a VM in a KubeVirt pod does.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
	"github.com/kubevirt/kubevirtci-go/internal/interrupt"
)

// upBoundaries are Up's step boundaries (the points its hook names) for
// the PFs of a VM environment, in the order Up passes them.
func (e *vmEnv) upBoundaries() []string {
	points := []string{"ledger-written"}
	for _, state := range []string{"moved-unrecorded", "moved", "configured-unrecorded", "configured"} {
		for _, p := range e.pfs {
			points = append(points, state+":"+p.pci)
		}
	}
	return points
}

// clusterDown gives the PFs back in cluster-down's order (its step table):
// the undo of the PF move while the nodes still run, the nodes deleted
// (with every process in them), then the release that restores the VF
// counts and removes the ledger.
func (e *vmEnv) clusterDown(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	must(t, e.manager().ReturnNetdevs(ctx, e.nodes))
	for _, w := range e.workers {
		e.nodes.kill(w)
	}
	must(t, e.manager().Return(ctx, e.nodes))
}

// TestVMInterrupted: the SR-IOV part of cluster-up runs in a process of its
// own with the tool's signal handling (internal/interrupt) and is stopped,
// at a step boundary picked at random, by a real SIGINT or SIGTERM sent by
// this test (Up must notice, give everything back by itself and exit 130:
// a finished Up fails the case), or by SIGKILL (nothing of it runs after).
// After SIGINT and SIGTERM the host is checked before anything else runs;
// then cluster-down, in its real order, must succeed and change nothing.
// After SIGKILL, cluster-down must bring every PF home.
// SRIOV_VM_SEED replays a run's choice of boundaries.
func TestVMInterrupted(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("SRIOV_VM_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("SRIOV_VM_SEED=%q: %v", s, err)
		}
	}
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d (SRIOV_VM_SEED=%d replays these boundaries)", seed, seed)
	signals := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL}
	for i := range 2 * len(signals) {
		sig := signals[i%len(signals)]
		pick := rng.Int()
		t.Run(fmt.Sprintf("%s-%d", unix.SignalName(sig), i), func(t *testing.T) {
			e := newVMEnv(t, 2, Options{PFCountPerNode: 2, VFCount: 3})
			points := e.upBoundaries()
			at := points[pick%len(points)]
			out, status := e.runUp(t, at, sig)
			t.Logf("%s at %s", unix.SignalName(sig), at)
			if sig == syscall.SIGKILL {
				if !status.Signaled() || status.Signal() != syscall.SIGKILL {
					t.Fatalf("the process did not die by SIGKILL (%v):\n%s", status, out)
				}
				l, err := ReadLedger(e.opts.StateDir, e.opts.Cluster)
				if l == nil {
					t.Fatalf("no ledger after SIGKILL at %s (%v): cluster-down would not know what to give back", at, err)
				}
				t.Logf("left for cluster-down: ledger states %v", states(l))
				e.clusterDown(t)
				e.checkHome(t)
				return
			}
			if status.Signaled() || status.ExitStatus() != 130 {
				t.Fatalf("after %s the process ended with %v, want exit status 130 (interrupted):\n%s", unix.SignalName(sig), status, out)
			}
			for _, want := range []string{"interrupted", "rolled back: every PF is back on the host"} {
				if !strings.Contains(out, want) {
					t.Errorf("Up's error does not say %q:\n%s", want, out)
				}
			}
			// Before anything else: the interrupted Up undid all it did.
			e.checkHome(t)
			if t.Failed() {
				return
			}
			e.clusterDown(t)
			e.checkHome(t)
		})
	}
}

// runUp runs TestVMUpProcess (Up in a process of its own), sends it sig
// when it reports reaching boundary at, and returns what it printed and how
// it ended. The process waits at the boundary for the signal, so Up can
// never finish before it.
func (e *vmEnv) runUp(t *testing.T, at string, sig syscall.Signal) (string, syscall.WaitStatus) {
	t.Helper()
	spec := crashSpec{Opts: e.opts, PIDs: map[string]int{}, Workers: e.workers, CrashAt: at}
	for _, w := range e.workers {
		pid, err := e.nodes.PID(context.Background(), w)
		must(t, err)
		spec.PIDs[w] = pid
	}
	raw, err := json.Marshal(spec)
	must(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^TestVMUpProcess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "SRIOV_VM_UP="+string(raw))
	out, err := startPiped(cmd)
	must(t, err)
	stop := time.AfterFunc(3*time.Minute, func() { cmd.Process.Kill() })
	defer stop.Stop()
	var text strings.Builder
	sent := false
	start := time.Now()
	for l := range out {
		text.WriteString(l + "\n")
		if !sent && l == "sriov-up: at "+at {
			t.Logf("at %s after %s: sending %s", at, time.Since(start).Round(time.Millisecond), unix.SignalName(sig))
			must(t, cmd.Process.Signal(sig))
			sent = true
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if !sent {
		t.Fatalf("the process never reached %s:\n%s", at, text.String())
	}
	return text.String(), cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// startPiped starts cmd with its stdout and stderr on one pipe, read line
// by line into the channel, which is closed when the process and every
// process it started have closed it.
func startPiped(cmd *exec.Cmd) (<-chan string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines, nil
}

// TestVMUpProcess is the process TestVMInterrupted stops: Up with the
// tool's signal handling, waiting at the chosen boundary for the signal.
// It exits as the tool does: 130 when interrupted, 1 on another error.
func TestVMUpProcess(t *testing.T) {
	raw := os.Getenv("SRIOV_VM_UP")
	if raw == "" {
		t.Skip("the process that TestVMInterrupted starts and stops")
	}
	var spec crashSpec
	must(t, json.Unmarshal([]byte(raw), &spec))
	ctx := interrupt.Context(context.Background())
	m, err := New(spec.Opts, cmdrun.Exec{}, nil)
	must(t, err)
	m.hook = func(p string) {
		if p != spec.CrashAt {
			return
		}
		fmt.Printf("sriov-up: at %s\n", p)
		select {
		case <-ctx.Done():
		case <-time.After(time.Minute):
			fmt.Println("sriov-up: no signal came within a minute")
		}
	}
	_, err = m.Up(ctx, staticNodes(spec.PIDs), spec.Workers)
	fmt.Printf("sriov-up: Up returned: %v\n", err)
	if code := interrupt.ExitCode(err); code != 0 {
		os.Exit(code)
	}
}

// TestVMClusterDownVFHeld: a process in a node holds a VF as QEMU in a
// KubeVirt VM's pod does (the VFIO container, the VF's group attached to it
// with the type-1 IOMMU, the device open). First, the control: while it is
// held, resetting its PF's VF count does not finish, and it finishes once
// the holder is gone, so a cluster-down that reset the VF counts before
// deleting the nodes would hang. Then cluster-down's real order with a VF
// of the other PF held: the netdevs come home while the node and the
// holder live, the node is killed and the holder with it, and the VF counts
// are restored: every PF home as before.
func TestVMClusterDownVFHeld(t *testing.T) {
	ctx := context.Background()
	e := newVMEnv(t, 2, Options{PFCountPerNode: 2, VFCount: 2})
	as, err := e.manager().Up(ctx, e.nodes, e.workers)
	must(t, err)
	e.checkLent(t, as, 2)
	a := as[0]
	node, err := e.nodes.PID(ctx, a.Node)
	must(t, err)

	pfA := a.PFs[0]
	h := holdVF(t, node, firstVF(t, pfA.PCI))
	reset := make(chan error, 1)
	go func() {
		reset <- os.WriteFile(filepath.Join(pciDir(pfA.PCI), "sriov_numvfs"), []byte("0"), 0)
	}()
	select {
	case err := <-reset:
		t.Fatalf("the VF count of %s was reset (%v) while %s holds one of its VFs: the holder does not hold it", pfA.Name, err, a.Node)
	case <-time.After(3 * time.Second):
		t.Logf("control: resetting the VF count of %s waits while a VF is held (3 s)", pfA.Name)
	}
	h.kill(t)
	start := time.Now()
	select {
	case err := <-reset:
		must(t, err)
		t.Logf("control: the reset finished %s after the holder died", time.Since(start).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatalf("resetting the VF count of %s still waits 30 s after the holder died", pfA.Name)
	}

	pfB := a.PFs[1]
	vf := firstVF(t, pfB.PCI)
	h = holdVF(t, node, vf)
	m := e.manager()
	start = time.Now()
	must(t, m.ReturnNetdevs(ctx, e.nodes))
	t.Logf("cluster-down: the netdevs home in %s, a VF of %s held", time.Since(start).Round(time.Millisecond), pfB.Name)
	if _, ok := linkByName(linksOf(t, 0), pfB.Name); !ok {
		t.Errorf("%s is not home after the netdevs' return", pfB.Name)
	}
	if got := vfsOf(t, pfB.PCI); len(got) != 2 || got[vf] != VFDriver {
		t.Errorf("%s has VFs %v after the netdevs' return; want its 2 VFs on %s still (the VF counts are restored last)", pfB.Name, got, VFDriver)
	}
	if !h.alive() {
		t.Errorf("the holder of %s died before its node was deleted", vf)
	}
	start = time.Now()
	for _, w := range e.workers {
		e.nodes.kill(w)
	}
	h.waitGone(t, 10*time.Second)
	t.Logf("cluster-down: the nodes deleted, the holder of %s gone with its node, in %s", vf, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	must(t, m.Return(ctx, e.nodes))
	t.Logf("cluster-down: VF counts restored in %s", time.Since(start).Round(time.Millisecond))
	e.checkHome(t)
}

// firstVF is the PCI address of a PF's first VF.
func firstVF(t *testing.T, pf string) string {
	t.Helper()
	vf, err := linkBase(filepath.Join(pciDir(pf), "virtfn0"))
	must(t, err)
	return vf
}

// vfHolder is a process in a node (its network and PID namespaces) that
// holds a VF open through VFIO (TestVMHoldVF).
type vfHolder struct {
	vf   string
	pid  int // in the host's PID namespace
	cmd  *exec.Cmd
	mu   sync.Mutex
	gone chan struct{}
}

// holdVF starts a holder of vf in the node whose process is nodePID and
// checks that it holds it: in the node's namespaces, with the VFIO device
// open.
func holdVF(t *testing.T, nodePID int, vf string) *vfHolder {
	t.Helper()
	cmd := exec.Command("nsenter", "-t", strconv.Itoa(nodePID), "-n", "-p", os.Args[0], "-test.run=^TestVMHoldVF$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "SRIOV_VM_HOLD="+vf)
	out, err := startPiped(cmd)
	must(t, err)
	h := &vfHolder{vf: vf, cmd: cmd, gone: make(chan struct{})}
	t.Cleanup(func() { h.kill(t) })
	holding := make(chan struct{})
	var text strings.Builder
	go func() {
		said := false
		for l := range out {
			h.mu.Lock()
			text.WriteString(l + "\n")
			h.mu.Unlock()
			if !said && strings.HasPrefix(l, "vf-holder: holding ") {
				said = true
				close(holding)
			}
		}
		cmd.Wait()
		close(h.gone)
	}()
	select {
	case <-holding:
	case <-h.gone:
		t.Fatalf("the holder of %s ended: %s", vf, text.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the holder of %s did not say it holds it within 30 s", vf)
	}
	// nsenter forks the holder into the node's PID namespace.
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
	must(t, err)
	if h.pid, err = strconv.Atoi(strings.Fields(string(children) + " x")[0]); err != nil {
		t.Fatalf("the holder's process (children of nsenter: %q): %v", children, err)
	}
	for _, ns := range []string{"net", "pid"} {
		mine, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", h.pid, ns))
		nodes, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", nodePID, ns))
		if mine == "" || mine != nodes {
			t.Fatalf("the holder of %s is in %s namespace %q, its node in %q", vf, ns, mine, nodes)
		}
	}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", h.pid))
	var open []string
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.Contains(l, "vfio") {
			open = append(open, l)
		}
	}
	if !strings.Contains(strings.Join(open, " "), "vfio-device") {
		t.Fatalf("the holder of %s has no VFIO device open (its VFIO files: %v)", vf, open)
	}
	t.Logf("%s held by process %d in the node (%v)", vf, h.pid, open)
	return h
}

func (h *vfHolder) alive() bool {
	select {
	case <-h.gone:
		return false
	default:
		return true
	}
}

// kill ends the holder alone (not its node).
func (h *vfHolder) kill(t *testing.T) {
	if h.pid > 0 && h.alive() {
		syscall.Kill(h.pid, syscall.SIGKILL)
	}
	h.waitGone(t, 10*time.Second)
}

func (h *vfHolder) waitGone(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-h.gone:
	case <-time.After(d):
		t.Errorf("the holder of %s (process %d) still runs %s later", h.vf, h.pid, d)
	}
}

// VFIO's ioctls (linux/vfio.h): _IO(';', 100 + n).
const (
	vfioGetAPIVersion      = 0x3b64
	vfioCheckExtension     = 0x3b65
	vfioSetIOMMU           = 0x3b66
	vfioGroupGetStatus     = 0x3b67
	vfioGroupSetContainer  = 0x3b68
	vfioGroupGetDeviceFD   = 0x3b6a
	vfioType1IOMMU         = 1
	vfioGroupFlagsViable   = 1
	vfioAPIVersion         = 0
	vfioGroupStatusArgSize = 8
)

func ioctl(fd int, req, arg uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

// ioctlPtr is ioctl with a pointer argument (kept alive for the call).
func ioctlPtr(fd int, req uintptr, arg unsafe.Pointer) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

// TestVMHoldVF is the holder that TestVMClusterDownVFHeld starts in a node:
// it opens the VF named by SRIOV_VM_HOLD as QEMU does for a VFIO device
// and waits until it is killed.
func TestVMHoldVF(t *testing.T) {
	vf := os.Getenv("SRIOV_VM_HOLD")
	if vf == "" {
		t.Skip("the process that TestVMClusterDownVFHeld starts in a node")
	}
	group, err := linkBase(filepath.Join(pciDir(vf), "iommu_group"))
	must(t, err)
	container, err := unix.Open("/dev/vfio/vfio", unix.O_RDWR|unix.O_CLOEXEC, 0)
	must(t, err)
	if v, err := ioctl(container, vfioGetAPIVersion, 0); err != nil || v != vfioAPIVersion {
		t.Fatalf("VFIO API version %d (%v), want %d", v, err, vfioAPIVersion)
	}
	if ok, err := ioctl(container, vfioCheckExtension, vfioType1IOMMU); err != nil || ok != 1 {
		t.Fatalf("VFIO has no type-1 IOMMU (%v)", err)
	}
	g, err := unix.Open("/dev/vfio/"+group, unix.O_RDWR|unix.O_CLOEXEC, 0)
	must(t, err)
	status := [2]uint32{vfioGroupStatusArgSize, 0}
	if _, err := ioctlPtr(g, vfioGroupGetStatus, unsafe.Pointer(&status)); err != nil || status[1]&vfioGroupFlagsViable == 0 {
		t.Fatalf("group %s of %s is not viable (flags %#x, %v): a device of the group is not on vfio-pci", group, vf, status[1], err)
	}
	cfd := int32(container)
	if _, err := ioctlPtr(g, vfioGroupSetContainer, unsafe.Pointer(&cfd)); err != nil {
		t.Fatalf("attaching group %s to the container: %v", group, err)
	}
	if _, err := ioctl(container, vfioSetIOMMU, vfioType1IOMMU); err != nil {
		t.Fatalf("setting the type-1 IOMMU: %v", err)
	}
	name := append([]byte(vf), 0)
	dev, err := ioctlPtr(g, vfioGroupGetDeviceFD, unsafe.Pointer(&name[0]))
	if err != nil {
		t.Fatalf("opening the VFIO device %s: %v", vf, err)
	}
	fmt.Printf("vf-holder: holding %s (group %s, device fd %d)\n", vf, group, dev)
	time.Sleep(time.Hour)
}
