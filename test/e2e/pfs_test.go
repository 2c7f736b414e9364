package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/kubevirt/kubevirtci-go/internal/sriov"
	"github.com/kubevirt/kubevirtci-go/internal/sriov/sriovsim"
)

// simTotalVFs is sriov_totalvfs of every simulated PF.
const simTotalVFs = 8

// markerPrefix starts the alias the tool gives a PF while a cluster holds it.
const markerPrefix = "kubevirtci-sriov:"

// linkState is what must come back when a PF returns to the host.
type linkState struct {
	Name  string
	MAC   string
	MTU   int
	Up    bool // administratively up
	Alias string
}

func (s linkState) String() string {
	state := "down"
	if s.Up {
		state = "up"
	}
	return fmt.Sprintf("%s mac %s mtu %d %s alias %q", s.Name, s.MAC, s.MTU, state, s.Alias)
}

func stateOf(l netlink.Link) linkState {
	a := l.Attrs()
	return linkState{Name: a.Name, MAC: a.HardwareAddr.String(), MTU: a.MTU, Up: a.Flags&net.FlagUp != 0, Alias: a.Alias}
}

// pfSet is a set of veth pairs standing in for SR-IOV PFs: one end of each
// pair is the "PF" (described by the simulated sysfs), the other stays on
// the host so that deleting it always removes the pair, wherever the PF is.
type pfSet struct {
	names []string             // PF ends, in PCI order
	pci   map[string]string    // PF name -> PCI address in the fake sysfs
	orig  map[string]linkState // as created, before any cluster
	root  string               // SRIOV_SYSFS_ROOT
	sim   *sriovsim.Sim
}

// newPFSet creates n veth pairs named <prefix>0..<prefix>n-1 (peers get an
// "x" suffix) with distinct MACs (02:e2:e0:<id>:00:<i>), MTUs, up/down states (even ones up) and,
// on the first, an alias; and starts the SR-IOV simulator describing them.
// Cleanups stop the simulator (failing the test if it had to refuse a
// write, which the kernel would have refused too) and delete the pairs.
func newPFSet(t *testing.T, prefix string, id byte, n int) *pfSet {
	t.Helper()
	s := &pfSet{pci: map[string]string{}, orig: map[string]linkState{}, root: filepath.Join(t.TempDir(), "sys")}
	var sims []sriovsim.PF
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i)
		peer := name + "x"
		if len(peer) > 15 {
			t.Fatalf("link name %s is too long", peer)
		}
		deleteLink(peer) // leftovers of an earlier, killed run
		deleteLink(name)
		la := netlink.NewLinkAttrs()
		la.Name = name
		la.MTU = 1400 + 10*i
		mac, _ := net.ParseMAC(fmt.Sprintf("02:e2:e0:%02x:00:%02x", id, i))
		la.HardwareAddr = mac
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer}); err != nil {
			t.Fatalf("creating veth pair %s/%s: %v", name, peer, err)
		}
		t.Cleanup(func() { deleteLink(peer); deleteLink(name) })
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := netlink.LinkSetAlias(l, "e2e original alias of "+name); err != nil {
				t.Fatal(err)
			}
		}
		if p, err := netlink.LinkByName(peer); err == nil {
			_ = netlink.LinkSetUp(p)
		}
		if i%2 == 0 {
			if err := netlink.LinkSetUp(l); err != nil {
				t.Fatal(err)
			}
		}
		l, _ = netlink.LinkByName(name)
		s.names = append(s.names, name)
		s.orig[name] = stateOf(l)
		sims = append(sims, sriovsim.PF{Name: name, TotalVFs: simTotalVFs})
	}
	sim, err := sriovsim.New(s.root, sims, sriovsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop, err := sim.Start(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := stop(); err != nil {
			t.Errorf("SR-IOV simulator: %v", err)
		}
		for _, e := range sim.Errors() {
			t.Errorf("SR-IOV simulator: the tool wrote what the kernel refuses: %v", e)
		}
	})
	s.sim = sim
	for _, p := range sim.PFs() {
		s.pci[p.Name] = p.PCI
	}
	sort.Slice(s.names, func(i, j int) bool { return s.pci[s.names[i]] < s.pci[s.names[j]] })
	for _, name := range s.names {
		t.Logf("PF stand-in %s at %s: %s", name, s.pci[name], s.orig[name])
	}
	return s
}

func deleteLink(name string) {
	if l, err := netlink.LinkByName(name); err == nil {
		_ = netlink.LinkDel(l)
	}
}

// hostLinks are the links of the test's (the host's) network namespace, by name.
func hostLinks() (map[string]linkState, error) {
	ls, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	m := map[string]linkState{}
	for _, l := range ls {
		m[l.Attrs().Name] = stateOf(l)
	}
	return m, nil
}

// containerLinks are the links inside a container's network namespace, by
// name, read with a netlink socket opened in that namespace. cli is the
// container CLI that runs it (docker or podman).
func containerLinks(cli, container string) (map[string]linkState, error) {
	out, err := engine(context.Background(), cli, "inspect", "--format", "{{.State.Pid}}", container)
	if err != nil {
		return nil, err
	}
	pid, err := strconv.Atoi(out)
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("container %s: pid %q (not running?)", container, out)
	}
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return nil, fmt.Errorf("network namespace of %s (pid %d): %w", container, pid, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	ls, err := h.LinkList()
	if err != nil {
		return nil, err
	}
	m := map[string]linkState{}
	for _, l := range ls {
		m[l.Attrs().Name] = stateOf(l)
	}
	return m, nil
}

// pciDir is a PF's or VF's device folder in the fake sysfs.
func (s *pfSet) pciDir(addr string) string {
	return filepath.Join(s.root, "bus", "pci", "devices", addr)
}

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return strings.TrimSpace(string(b))
}

// checkVFs checks the VF files of a PF in the fake sysfs: sriov_numvfs is
// want, virtfn0..want-1 exist, each VF is bound to vfio-pci and its
// driver_override is cleared again.
func (s *pfSet) checkVFs(t *testing.T, pf string, want int) {
	t.Helper()
	dir := s.pciDir(s.pci[pf])
	if got := readTrim(filepath.Join(dir, "sriov_numvfs")); got != strconv.Itoa(want) {
		t.Errorf("%s (%s): sriov_numvfs is %s, want %d", pf, s.pci[pf], got, want)
	}
	vfs, _ := filepath.Glob(filepath.Join(dir, "virtfn*"))
	if len(vfs) != want {
		t.Errorf("%s: %d virtfn links, want %d", pf, len(vfs), want)
	}
	if got := len(s.sim.VFs(pf)); got != want {
		t.Errorf("%s: the simulated kernel has %d VFs, want %d", pf, got, want)
	}
	for i := range want {
		vf := filepath.Join(dir, "virtfn"+strconv.Itoa(i))
		drv, err := filepath.EvalSymlinks(filepath.Join(vf, "driver"))
		if err != nil {
			t.Errorf("%s virtfn%d: no driver: %v", pf, i, err)
			continue
		}
		if filepath.Base(drv) != sriov.VFDriver {
			t.Errorf("%s virtfn%d: bound to %s, want %s", pf, i, filepath.Base(drv), sriov.VFDriver)
		}
		if o := readTrim(filepath.Join(vf, "driver_override")); o != "" && o != "(null)" {
			t.Errorf("%s virtfn%d: driver_override left as %q", pf, i, o)
		}
	}
}

// checkBack checks that every PF of the set is in the host namespace with
// its original name, MAC, MTU, up/down state and alias, that no VF is left
// (sriov_numvfs back to 0) and that no link carries a cluster's marker.
func (s *pfSet) checkBack(t *testing.T) {
	t.Helper()
	host, err := hostLinks()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range s.names {
		got, ok := host[name]
		if !ok {
			t.Errorf("PF %s is not back on the host", name)
			continue
		}
		if got != s.orig[name] {
			t.Errorf("PF %s came back as\n  %s\nwant\n  %s", name, got, s.orig[name])
		}
		if n := readTrim(filepath.Join(s.pciDir(s.pci[name]), "sriov_numvfs")); n != "0" {
			t.Errorf("PF %s: sriov_numvfs is %s after cluster-down, want 0 (as before)", name, n)
		}
		if vfs := s.sim.VFs(name); len(vfs) != 0 {
			t.Errorf("PF %s: VFs %v left after cluster-down", name, vfs)
		}
	}
	for name, l := range host {
		if strings.HasPrefix(l.Alias, markerPrefix) {
			t.Errorf("host link %s still carries the cluster marker alias %q", name, l.Alias)
		}
	}
}

// allBack reports whether every PF is back with its original state (for
// timing a return); it checks the network side only.
func (s *pfSet) allBack() bool {
	host, err := hostLinks()
	if err != nil {
		return false
	}
	for _, name := range s.names {
		if host[name] != s.orig[name] {
			return false
		}
	}
	return true
}

// checkHeld checks that the cluster's ledger and the workers agree: each
// worker holds exactly the PFs the ledger gives it, perCount of them, up,
// with their original MAC, and they are gone from the host. It returns the
// PF names by worker.
func (s *pfSet) checkHeld(t *testing.T, c *cluster, perCount int) map[string][]string {
	t.Helper()
	l, err := sriov.ReadLedger(c.stateDir, c.name)
	if err != nil || l == nil {
		t.Fatalf("ledger of %s in %s: %v (nil ledger: %v)", c.name, c.stateDir, err, l == nil)
	}
	byNode := map[string][]string{}
	for _, p := range l.PFs {
		byNode[p.Node] = append(byNode[p.Node], p.Name)
		if want := s.pci[p.Name]; want != p.PCI {
			t.Errorf("ledger of %s: PF %s recorded at %s, the simulated sysfs has it at %s", c.name, p.Name, p.PCI, want)
		}
		if o := s.orig[p.Name]; p.MAC != o.MAC || p.MTU != o.MTU || p.Up != o.Up || p.Alias != o.Alias {
			t.Errorf("ledger of %s: PF %s recorded as mac %s mtu %d up %v alias %q, want %s", c.name, p.Name, p.MAC, p.MTU, p.Up, p.Alias, o)
		}
	}
	host, err := hostLinks()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range c.workers() {
		names := byNode[w]
		sort.Strings(names)
		byNode[w] = names
		if len(names) != perCount {
			t.Errorf("ledger of %s gives %s the PFs %v, want %d PFs", c.name, w, names, perCount)
		}
		links, err := containerLinks(c.cri(), w)
		if err != nil {
			t.Errorf("links of %s: %v", w, err)
			continue
		}
		var inNode []string
		for n := range links {
			if _, isPF := s.orig[n]; isPF {
				inNode = append(inNode, n)
			}
		}
		sort.Strings(inNode)
		if strings.Join(inNode, ",") != strings.Join(names, ",") {
			t.Errorf("%s holds the PFs %v; its ledger entry says %v", w, inNode, names)
		}
		for _, n := range inNode {
			l := links[n]
			if !l.Up {
				t.Errorf("%s: PF %s is down in the node, want up", w, n)
			}
			if l.MAC != s.orig[n].MAC {
				t.Errorf("%s: PF %s has MAC %s in the node, want %s", w, n, l.MAC, s.orig[n].MAC)
			}
			if _, onHost := host[n]; onHost {
				t.Errorf("PF %s is in %s and also still on the host", n, w)
			}
		}
	}
	for n := range byNode {
		if !contains(c.workers(), n) {
			t.Errorf("ledger of %s gives PFs to %s, which is not a worker of the cluster", c.name, n)
		}
	}
	return byNode
}

// checkOnHostOnly checks that a PF is on the host, untouched, and in none
// of the nodes.
func (s *pfSet) checkOnHostOnly(t *testing.T, pf string, nodes []string) {
	t.Helper()
	host, err := hostLinks()
	if err != nil {
		t.Fatal(err)
	}
	if host[pf] != s.orig[pf] {
		t.Errorf("PF %s should be untouched on the host: have %s, want %s", pf, host[pf], s.orig[pf])
	}
	for _, n := range nodes {
		links, err := containerLinks("docker", n)
		if err != nil {
			t.Errorf("links of %s: %v", n, err)
			continue
		}
		if _, ok := links[pf]; ok {
			t.Errorf("PF %s must stay on the host but is in node %s", pf, n)
		}
	}
	if n := readTrim(filepath.Join(s.pciDir(s.pci[pf]), "sriov_numvfs")); n != "0" {
		t.Errorf("PF %s must be left alone but its sriov_numvfs is %s", pf, n)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
