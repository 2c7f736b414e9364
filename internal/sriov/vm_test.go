//go:build linux && sriovvm

package sriov

// Tests on real SR-IOV drivers: QEMU's igb NICs (Intel 82576, up to 7 VFs
// per PF) with the Linux igb, igbvf and vfio-pci drivers, in the VM that
// `make e2e-sriov-vm` boots (test/sriovvm). The sysfs is the kernel's own
// (/sys), the netlink, namespace and vfio work is real; only the NIC is
// emulated. Built with -tags sriovvm; they refuse to run on a host that has
// no igb PFs rather than skip.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
)

// vmPF is a PF as the test found it before touching it.
type vmPF struct {
	name, pci, mac, alias string
	mtu                   int
	up                    bool
	numVFs                int
	vfDriver              string // driver of its VFs ("" when it has none)
}

type vmEnv struct {
	t       *testing.T
	pfs     []vmPF
	nodes   *procNodes
	workers []string
	opts    Options
}

// newVMEnv finds the igb PFs (at least 4), gives them a known state (MTU,
// up/down, alias, no VFs) that each test checks after the return, and
// starts nNodes stand-in nodes.
func newVMEnv(t *testing.T, nNodes int, opts Options) *vmEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the SR-IOV VM tests run as root in the VM")
	}
	e := &vmEnv{t: t, nodes: &procNodes{procs: map[string]*exec.Cmd{}, dead: map[string]bool{}}}
	m, err := New(Options{Cluster: "probe", StateDir: t.TempDir()}, cmdrun.Exec{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A PF that a test's node took with it comes back when the kernel
	// tears that namespace down, which may be after the test ended.
	var found []PF
	must(t, poll(context.Background(), 30*time.Second, "4 igb PFs in the host namespace", func() (bool, error) {
		var err error
		found, err = m.Discover()
		n := 0
		for _, pf := range found {
			if pf.Driver == "igb" {
				n++
			}
		}
		return err == nil && n >= 4, err
	}))
	for i, pf := range found {
		if pf.Driver != "igb" {
			continue
		}
		setNumVFs(t, pf.PCI, 0)
		l, err := netlink.LinkByName(pf.Name)
		if err != nil {
			t.Fatal(err)
		}
		p := vmPF{name: pf.Name, pci: pf.PCI, mac: l.Attrs().HardwareAddr.String(), mtu: 1400 + 10*i, up: i%2 == 0,
			alias: fmt.Sprintf("vm-test-%d", i)}
		must(t, netlink.LinkSetMTU(l, p.mtu))
		must(t, netlink.LinkSetAlias(l, p.alias))
		if p.up {
			must(t, netlink.LinkSetUp(l))
		} else {
			must(t, netlink.LinkSetDown(l))
		}
		e.pfs = append(e.pfs, p)
	}
	if len(e.pfs) < 4 {
		t.Fatalf("found %d igb PFs (%v), want 4: is this the VM of make e2e-sriov-vm?", len(e.pfs), found)
	}
	for i := range nNodes {
		w := fmt.Sprintf("vm-worker%d", i+1)
		e.nodes.start(t, w)
		e.workers = append(e.workers, w)
	}
	opts.Cluster = "vm" + randHex(2)
	opts.StateDir = t.TempDir()
	if opts.ReturnWait == 0 {
		opts.ReturnWait = 20 * time.Second
	}
	e.opts = opts
	return e
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (e *vmEnv) manager() *Manager {
	m, err := New(e.opts, cmdrun.Exec{}, debugLog)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func pciDir(pci string) string { return filepath.Join("/sys/bus/pci/devices", pci) }

func setNumVFs(t testing.TB, pci string, n int) {
	t.Helper()
	f := filepath.Join(pciDir(pci), "sriov_numvfs")
	cur, _ := os.ReadFile(f)
	if strings.TrimSpace(string(cur)) == strconv.Itoa(n) {
		return
	}
	if n != 0 {
		must(t, os.WriteFile(f, []byte("0"), 0))
	}
	must(t, os.WriteFile(f, []byte(strconv.Itoa(n)), 0))
}

// vfsOf lists a PF's VFs (PCI addresses) with their drivers.
func vfsOf(t testing.TB, pci string) map[string]string {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(pciDir(pci), "virtfn*"))
	out := map[string]string{}
	for _, p := range matches {
		addr, err := linkBase(p)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := linkBase(filepath.Join(p, "driver"))
		out[addr] = d
	}
	return out
}

// checkLent: each assigned PF is up in its node, gone from the host, with
// vfs VFs on vfio-pci, each with its /dev/vfio/<group>.
func (e *vmEnv) checkLent(t *testing.T, as []Assignment, vfs int) {
	t.Helper()
	host := linksOf(t, 0)
	for _, a := range as {
		pid, err := e.nodes.PID(context.Background(), a.Node)
		must(t, err)
		in := linksOf(t, pid)
		for _, pf := range a.PFs {
			if _, ok := linkByName(host, pf.Name); ok {
				t.Errorf("%s is still in the host namespace", pf.Name)
			}
			if l, ok := linkByName(in, pf.Name); !ok || !l.Up {
				t.Errorf("%s: in node %s %t, up %t", pf.Name, a.Node, ok, l.Up)
			}
			got := vfsOf(t, pf.PCI)
			if len(got) != vfs {
				t.Errorf("%s (%s) has %d VFs, want %d", pf.Name, pf.PCI, len(got), vfs)
			}
			for vf, d := range got {
				if d != VFDriver {
					t.Errorf("VF %s of %s is on %q, want %s", vf, pf.Name, d, VFDriver)
					continue
				}
				group, err := linkBase(filepath.Join(pciDir(vf), "iommu_group"))
				if err != nil {
					t.Errorf("VF %s has no IOMMU group: %v", vf, err)
					continue
				}
				if _, err := os.Stat("/dev/vfio/" + group); err != nil {
					t.Errorf("VF %s: no /dev/vfio/%s: %v", vf, group, err)
				}
			}
		}
	}
}

// checkHome: every PF is back in the host with its name, MAC, MTU, state,
// alias and VFs (count and driver) as before, and the ledger is gone.
func (e *vmEnv) checkHome(t *testing.T) {
	t.Helper()
	host := linksOf(t, 0)
	for _, p := range e.pfs {
		l, ok := linkByName(host, p.name)
		if !ok {
			t.Errorf("%s (%s) is not back in the host namespace", p.name, p.pci)
			continue
		}
		if l.MAC != p.mac || l.MTU != p.mtu || l.Up != p.up || l.Alias != p.alias {
			t.Errorf("%s back as MAC %s MTU %d up %t alias %q; want MAC %s MTU %d up %t alias %q", p.name, l.MAC, l.MTU, l.Up, l.Alias, p.mac, p.mtu, p.up, p.alias)
		}
		vfs := vfsOf(t, p.pci)
		if len(vfs) != p.numVFs {
			t.Errorf("%s has %d VFs, want %d as before", p.name, len(vfs), p.numVFs)
		}
		for vf, d := range vfs {
			if d != p.vfDriver {
				t.Errorf("VF %s of %s is on %q, want %q as before", vf, p.name, d, p.vfDriver)
			}
		}
	}
	if l, err := ReadLedger(e.opts.StateDir, e.opts.Cluster); l != nil || err != nil {
		t.Errorf("ledger still there (%v)", err)
	}
}

// TestVMDiscover: the igb PFs are found with their PCI addresses and VF
// capacity; PF_BLACKLIST takes exact names; PF_COUNT_PER_NODE 1 and 2.
func TestVMDiscover(t *testing.T) {
	e := newVMEnv(t, 2, Options{})
	m := e.manager()
	found, err := m.Discover()
	must(t, err)
	byName := map[string]PF{}
	for _, pf := range found {
		byName[pf.Name] = pf
	}
	for _, p := range e.pfs {
		pf := byName[p.name]
		if pf.PCI != p.pci || pf.TotalVFs != 7 || pf.ParentDev != p.pci || pf.PermMAC == "" {
			t.Errorf("%s: found %+v; want PCI %s (also as netlink's parent device), 7 VFs at most, a permanent MAC", p.name, pf, p.pci)
		}
		t.Logf("PF %s %s driver %s totalvfs %d", pf.Name, pf.PCI, pf.Driver, pf.TotalVFs)
	}
	for _, c := range []struct {
		count     int
		blacklist []string
		want      [][]string // PF names per worker
	}{
		{1, nil, [][]string{{e.pfs[0].name}, {e.pfs[1].name}}},
		{2, nil, [][]string{{e.pfs[0].name, e.pfs[1].name}, {e.pfs[2].name, e.pfs[3].name}}},
		{1, []string{e.pfs[0].name}, [][]string{{e.pfs[1].name}, {e.pfs[2].name}}},
	} {
		e.opts.PFCountPerNode, e.opts.Blacklist = c.count, c.blacklist
		plan, err := e.manager().Check(context.Background(), e.workers)
		must(t, err)
		for i, w := range e.workers {
			if got := plan.PFNames(w); strings.Join(got, ",") != strings.Join(c.want[i], ",") {
				t.Errorf("PF_COUNT_PER_NODE=%d PF_BLACKLIST=%v: %s gets %v, want %v", c.count, c.blacklist, w, got, c.want[i])
			}
		}
	}
	e.opts.PFCountPerNode, e.opts.Blacklist = 2, []string{e.pfs[3].name}
	if _, err := e.manager().Check(context.Background(), e.workers); err == nil {
		t.Error("4 PFs wanted, 3 not blacklisted: Check passed")
	}
}

// TestVMUpAndReturn: the PFs move into the nodes, get VFS_COUNT VFs on
// vfio-pci, and come back as they were (6 VFs, and the device's maximum, 7).
func TestVMUpAndReturn(t *testing.T) {
	for _, vfs := range []int{6, 7} {
		t.Run(fmt.Sprintf("VFS_COUNT=%d", vfs), func(t *testing.T) {
			e := newVMEnv(t, 2, Options{PFCountPerNode: 2, VFCount: vfs})
			start := time.Now()
			as, err := e.manager().Up(context.Background(), e.nodes, e.workers)
			must(t, err)
			t.Logf("Up, 4 igb PFs with %d VFs each: %s", vfs, time.Since(start).Round(time.Millisecond))
			e.checkLent(t, as, vfs)
			start = time.Now()
			must(t, e.manager().Return(context.Background(), e.nodes))
			t.Logf("Return: %s", time.Since(start).Round(time.Millisecond))
			e.checkHome(t)
		})
	}
}

// TestVMTooManyVFs: 8 VFs on a PF whose sriov_totalvfs is 7 is refused
// before anything moves.
func TestVMTooManyVFs(t *testing.T) {
	e := newVMEnv(t, 2, Options{PFCountPerNode: 1, VFCount: 8})
	_, err := e.manager().Up(context.Background(), e.nodes, e.workers)
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("Up with VFS_COUNT=8 on 7-VF PFs: %v; want a refusal before any change", err)
	}
	t.Logf("as the user sees it: %v", err)
	e.checkHome(t)
}

// TestVMReturnRestoresVFs: a PF that had 2 VFs on igbvf before it was
// taken gets them back, on igbvf.
func TestVMReturnRestoresVFs(t *testing.T) {
	e := newVMEnv(t, 2, Options{PFCountPerNode: 1, VFCount: 3})
	p := &e.pfs[0]
	setNumVFs(t, p.pci, 2)
	must(t, poll(context.Background(), 20*time.Second, "the VFs of "+p.name+" on igbvf", func() (bool, error) {
		vfs := vfsOf(t, p.pci)
		for _, d := range vfs {
			if d != "igbvf" {
				return false, nil
			}
		}
		return len(vfs) == 2, nil
	}))
	p.numVFs, p.vfDriver = 2, "igbvf"
	as, err := e.manager().Up(context.Background(), e.nodes, e.workers)
	must(t, err)
	e.checkLent(t, as, 3)
	must(t, e.manager().Return(context.Background(), e.nodes))
	e.checkHome(t)
	setNumVFs(t, p.pci, 0)
}

// TestVMNodeDies: a node dies while it holds PFs. The kernel hands
// physical NICs of a dead namespace back to the initial one; one of them
// comes back as dev<N> because its name is taken meanwhile. Return finds
// both by PCI address and restores them.
func TestVMNodeDies(t *testing.T) {
	e := newVMEnv(t, 2, Options{PFCountPerNode: 2, VFCount: 2})
	as, err := e.manager().Up(context.Background(), e.nodes, e.workers)
	must(t, err)
	taken := as[0].PFs[0].Name
	// A link that takes the name while the PF is away.
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: taken}, PeerName: "vmtestpeer"}
	must(t, netlink.LinkAdd(veth))
	e.nodes.kill(e.workers[0])
	must(t, poll(context.Background(), 20*time.Second, "the kernel to hand "+as[0].PFs[1].Name+" back", func() (bool, error) {
		_, ok := linkByName(linksOf(t, 0), as[0].PFs[1].Name)
		return ok, nil
	}))
	var renamed string
	for _, l := range linksOf(t, 0) {
		if strings.HasPrefix(l.Name, "dev") && l.ParentDev == as[0].PFs[0].PCI {
			renamed = l.Name
		}
	}
	if renamed == "" {
		t.Errorf("%s (%s) did not come back as dev<N>", taken, as[0].PFs[0].PCI)
	}
	t.Logf("the kernel handed %s back as %s", taken, renamed)
	if l, err := netlink.LinkByName(taken); err == nil {
		must(t, netlink.LinkDel(l))
	}
	must(t, e.manager().Return(context.Background(), e.nodes))
	e.checkHome(t)
}
