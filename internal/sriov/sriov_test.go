package sriov

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
	"github.com/kubevirt/kubevirtci-go/internal/sriov/sriovsim"
)

func TestDiscover(t *testing.T) {
	e := newEnv(t, fourPFs, Options{}, sriovsim.Options{})
	// A PF described in sysfs but not in the host namespace (moved away) is
	// not a candidate; a host link without sysfs device is not a PF.
	pfs, err := e.m.Discover()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pfs {
		got = append(got, p.Name+"@"+p.PCI)
	}
	want := []string{"ens1f0@0000:3b:00.0", "ens1f1@0000:3b:00.1", "ens1f10@0000:5e:00.0", "ens2f0@0000:af:00.0"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("discovered %v, want %v (by PCI address)", got, want)
	}
	p := pfs[0]
	if p.TotalVFs != 8 || p.NumVFs != 0 || p.Driver != sriovsim.DefaultDriver || p.MAC != "aa:00:00:00:00:01" || p.MTU != 9000 || p.Up {
		t.Fatalf("ens1f0 recorded as %+v", p)
	}

	// Gone from the host namespace: no longer discovered.
	e.net.mu.Lock()
	e.net.ns[0] = e.net.ns[0][:len(e.net.ns[0])-1] // ens2f0
	e.net.mu.Unlock()
	pfs, err = e.m.Discover()
	if err != nil {
		t.Fatal(err)
	}
	if len(pfs) != 3 {
		t.Fatalf("got %d PFs after ens2f0 left the host, want 3", len(pfs))
	}
}

func TestAllocateExactBlacklist(t *testing.T) {
	found := []PF{
		{Name: "ens1f0", PCI: "0000:3b:00.0"}, {Name: "ens1f1", PCI: "0000:3b:00.1"},
		{Name: "ens1f10", PCI: "0000:5e:00.0"}, {Name: "ens2f0", PCI: "0000:af:00.0"},
	}
	opts := Options{PFCountPerNode: 1, Blacklist: []string{" ens1f1", ""}}
	plan, err := allocate(found, opts, nil, []string{"w1", "w2", "w3"})
	if err != nil {
		t.Fatal(err)
	}
	if names(plan.Blacklisted) != "ens1f1" {
		t.Fatalf("blacklisted %q, want only ens1f1 (not ens1f10)", names(plan.Blacklisted))
	}
	var got []string
	for _, a := range plan.Assignments {
		got = append(got, a.Node+"="+names(a.PFs))
	}
	if want := []string{"w1=ens1f0", "w2=ens1f10", "w3=ens2f0"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("assignments %v, want %v", got, want)
	}

	// Blacklisting ens1f10 keeps ens1f1.
	plan, err = allocate(found, Options{PFCountPerNode: 1, Blacklist: []string{"ens1f10"}}, nil, []string{"w1"})
	if err != nil {
		t.Fatal(err)
	}
	if names(plan.Blacklisted) != "ens1f10" || names(plan.Assignments[0].PFs) != "ens1f0" {
		t.Fatalf("blacklist ens1f10: blacklisted %q, assigned %q", names(plan.Blacklisted), names(plan.Assignments[0].PFs))
	}
}

// A PF that cannot have VFS_COUNT VFs is skipped for a spare one; when too
// few remain, the error names the small ones with their sriov_totalvfs.
func TestAllocateSkipsPFsWithTooFewVFs(t *testing.T) {
	found := []PF{
		{Name: "a", PCI: "0000:01:00.0", TotalVFs: 4}, {Name: "b", PCI: "0000:02:00.0", TotalVFs: 8},
		{Name: "c", PCI: "0000:03:00.0", TotalVFs: 8},
	}
	plan, err := allocate(found, Options{PFCountPerNode: 1, VFCount: 6}, nil, []string{"w1", "w2"})
	if err != nil {
		t.Fatal(err)
	}
	if names(plan.Assignments[0].PFs) != "b" || names(plan.Assignments[1].PFs) != "c" || names(plan.TooFewVFs) != "a" {
		t.Fatalf("assignments %+v, too few VFs %q; want b, c and a skipped", plan.Assignments, names(plan.TooFewVFs))
	}
	_, err = allocate(found, Options{PFCountPerNode: 1, VFCount: 6}, nil, []string{"w1", "w2", "w3"})
	if err == nil || !strings.Contains(err.Error(), "1 with fewer VFs than VFS_COUNT=6 (sriov_totalvfs: a 4)") || !strings.Contains(err.Error(), "lower VFS_COUNT") {
		t.Fatalf("too few PFs with enough VFs: %v", err)
	}
}

// PF_BLACKLIST takes PCI addresses too.
func TestAllocateBlacklistByPCI(t *testing.T) {
	found := []PF{{Name: "a", PCI: "0000:01:00.0"}, {Name: "b", PCI: "0000:02:00.0"}}
	plan, err := allocate(found, Options{PFCountPerNode: 1, Blacklist: []string{"0000:01:00.0"}}, nil, []string{"w1"})
	if err != nil {
		t.Fatal(err)
	}
	if names(plan.Blacklisted) != "a" || names(plan.Assignments[0].PFs) != "b" {
		t.Fatalf("blacklisted %q, assigned %q; want a (by its PCI address) and b", names(plan.Blacklisted), names(plan.Assignments[0].PFs))
	}
}

func TestAllocateCounts(t *testing.T) {
	found := []PF{
		{Name: "a", PCI: "0000:01:00.0"}, {Name: "b", PCI: "0000:02:00.0"},
		{Name: "c", PCI: "0000:03:00.0"}, {Name: "d", PCI: "0000:04:00.0"}, {Name: "e", PCI: "0000:05:00.0"},
	}
	plan, err := allocate(found, Options{PFCountPerNode: 2}, nil, []string{"w1", "w2"})
	if err != nil {
		t.Fatal(err)
	}
	if names(plan.Assignments[0].PFs) != "a, b" || names(plan.Assignments[1].PFs) != "c, d" {
		t.Fatalf("PF_COUNT_PER_NODE=2: %+v", plan.Assignments)
	}
	if got := plan.PFNames("w2"); !reflect.DeepEqual(got, []string{"c", "d"}) {
		t.Fatalf("PFNames(w2) = %v", got)
	}

	held := []heldPF{{Cluster: "other", Ledger: "/state/other.json", PCI: "0000:03:00.0", Name: "c"}}
	_, err = allocate(found, Options{PFCountPerNode: 2, Blacklist: []string{"a"}}, held, []string{"w1", "w2"})
	want := `not enough SR-IOV PFs: need 4 (2 workers x PF_COUNT_PER_NODE=2), found 5: 1 blacklisted by PF_BLACKLIST (a), 1 in use by other clusters (c by cluster "other"), 3 available (b, d, e); a PF used by another cluster comes back with that cluster's cluster-down (ledgers in /state)`
	if err == nil || err.Error() != want {
		t.Fatalf("too few PFs:\n got: %v\nwant: %s", err, want)
	}

	// Every PF is in another cluster's nodes: none in the host namespace.
	held = []heldPF{{Cluster: "other", Ledger: "/state/other.json", PCI: "0000:09:00.0", Name: "z"}}
	_, err = allocate(nil, Options{PFCountPerNode: 1}, held, []string{"w1"})
	if err == nil || !strings.Contains(err.Error(), `found 0: 0 blacklisted by PF_BLACKLIST, 0 in use by other clusters, 0 available; other clusters hold 1 more PF(s) outside the host namespace (z by cluster "other")`) {
		t.Fatalf("all PFs away: %v", err)
	}

	_, err = allocate(found, Options{PFCountPerNode: 3}, nil, []string{"w1", "w2"})
	if err == nil || !strings.Contains(err.Error(), "need 6 (2 workers x PF_COUNT_PER_NODE=3), found 5") {
		t.Fatalf("too few PFs: %v", err)
	}

	_, err = allocate(found, Options{PFCountPerNode: 1, Blacklist: []string{"a", "b", "c", "d", "e"}}, nil, []string{"w1"})
	if err == nil || !strings.Contains(err.Error(), "every SR-IOV PF found is blacklisted") {
		t.Fatalf("all blacklisted: %v", err)
	}
	_, err = allocate(nil, Options{PFCountPerNode: 1, SysfsRoot: "/sys"}, nil, []string{"w1"})
	if err == nil || !strings.Contains(err.Error(), "no SR-IOV PF found") {
		t.Fatalf("none found: %v", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Cluster: "a/b"}, "cluster name"},
		{Options{Cluster: "sriov", PFCountPerNode: -1}, "PF_COUNT_PER_NODE=-1"},
		{Options{Cluster: "sriov", VFCount: -2}, "VFS_COUNT=-2"},
	} {
		if _, err := New(tc.o, nil, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want it to mention %q", tc.o, err, tc.want)
		}
	}
	m, err := New(Options{Cluster: "sriov"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o := m.Options(); o.SysfsRoot != "/sys" || o.StateDir != DefaultStateDir || o.VFCount != 6 || o.PFCountPerNode != 1 {
		t.Fatalf("defaults: %+v", o)
	}
}

func TestLedgerRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if l, err := ReadLedger(dir, "c1"); l != nil || err != nil {
		t.Fatalf("no ledger: got %v, %v", l, err)
	}
	l := &Ledger{Version: LedgerVersion, Cluster: "c1", SysfsRoot: "/sys", VFCount: 6, Created: time.Now().UTC().Truncate(time.Second),
		PFs: []LedgerPF{{PCI: "0000:3b:00.0", Node: "w1", Name: "ens1f0", MAC: "aa:bb:cc:dd:ee:ff", MTU: 9000, Up: true,
			Alias: "uplink", Driver: "ice", TotalVFs: 64, NumVFs: 2, Autoprobe: "1", Marker: marker("c1", "0000:3b:00.0"), State: StateMoved}}}
	if err := writeLedger(dir, l); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLedger(dir, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, l) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, l)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("state dir holds %d entries, want only the ledger (no temp files)", len(entries))
	}
	held, err := otherLedgers(dir, "c2")
	if err != nil || len(held) != 1 || held[0].PCI != "0000:3b:00.0" || held[0].Cluster != "c1" {
		t.Fatalf("other ledgers seen by c2: %+v, %v", held, err)
	}
	if held, _ := otherLedgers(dir, "c1"); len(held) != 0 {
		t.Fatalf("a cluster's own ledger counted as another's: %+v", held)
	}
	os.WriteFile(LedgerPath(dir, "bad"), []byte("{"), 0o644)
	if _, err := otherLedgers(dir, "c2"); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Fatalf("a broken ledger must stop allocation, got %v", err)
	}
	os.WriteFile(LedgerPath(dir, "bad"), []byte(`{"version": 9}`), 0o644)
	if _, err := ReadLedger(dir, "bad"); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Fatalf("unknown version: %v", err)
	}
	if err := removeLedger(dir, "c1"); err != nil {
		t.Fatal(err)
	}
	if l, _ := ReadLedger(dir, "c1"); l != nil {
		t.Fatal("ledger still there after removal")
	}
}

func TestFindPF(t *testing.T) {
	p := &LedgerPF{Name: "ens1f0", PCI: "0000:3b:00.0", MAC: "aa:00:00:00:00:01", Marker: marker("c", "0000:3b:00.0")}
	links := []linkInfo{
		{Index: 1, Name: "eth0", MAC: "aa:00:00:00:00:09"},
		{Index: 7, Name: "dev7", MAC: "02:00:00:00:00:01", Alias: p.Marker}, // renamed, MAC changed
	}
	if l, ok, err := findPF(links, p); !ok || err != nil || l.Index != 7 {
		t.Fatalf("by alias: %v %v %v", l, ok, err)
	}
	// Real NIC: the PCI parent wins over anything else.
	q := *p
	q.ParentDev = q.PCI
	links2 := append(links, linkInfo{Index: 9, Name: "x", ParentBus: "pci", ParentDev: q.PCI})
	if l, ok, _ := findPF(links2, &q); !ok || l.Index != 9 {
		t.Fatalf("by parent device: %v %v", l, ok)
	}
	// Alias lost: the MAC finds it when unique...
	links3 := []linkInfo{{Index: 3, Name: "net3", MAC: p.MAC}}
	if l, ok, _ := findPF(links3, p); !ok || l.Index != 3 {
		t.Fatalf("by MAC: %v %v", l, ok)
	}
	// ...and not when shared (a bond, a macvlan) or owned by another PCI device.
	links4 := []linkInfo{{Index: 3, Name: "net3", MAC: p.MAC}, {Index: 4, Name: "bond0", MAC: p.MAC}}
	if _, ok, _ := findPF(links4, p); ok {
		t.Fatal("a MAC shared by two links must not identify the PF")
	}
	links5 := []linkInfo{{Index: 3, Name: "net3", MAC: p.MAC, ParentBus: "pci", ParentDev: "0000:99:00.0"}}
	if _, ok, _ := findPF(links5, p); ok {
		t.Fatal("a link with another PCI parent must not be taken for the PF")
	}
	if _, ok, _ := findMarkedPF(links3, p); ok {
		t.Fatal("findMarkedPF must not go by MAC")
	}
	links6 := []linkInfo{{Index: 3, Alias: p.Marker, Name: "a"}, {Index: 4, Alias: p.Marker, Name: "b"}}
	if _, _, err := findPF(links6, p); err == nil {
		t.Fatal("two links with the marker must be an error")
	}
}

// TestVFWritesInOrder checks the exact sysfs writes of VF creation and
// binding, with and without sriov_drivers_autoprobe.
func TestVFWritesInOrder(t *testing.T) {
	for _, autoprobe := range []bool{true, false} {
		t.Run(fmt.Sprintf("autoprobe=%t", autoprobe), func(t *testing.T) {
			sim, err := sriovsim.New(t.TempDir(), []sriovsim.PF{{Name: "ens1f0", PCI: "0000:3b:00.0", TotalVFs: 4, NumVFs: 2, NoAutoprobe: !autoprobe}}, sriovsim.Options{})
			if err != nil {
				t.Fatal(err)
			}
			stop, err := sim.Start(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			e := &env{t: t, sim: sim}
			m := e.manager(Options{Cluster: "c", SysfsRoot: sim.Root, VFCount: 3, SysfsTimeout: 5 * time.Second})
			p := &LedgerPF{Name: "ens1f0", PCI: "0000:3b:00.0", NumVFs: 2, Autoprobe: map[bool]string{true: "1", false: ""}[autoprobe]}
			vfs, err := m.configureVFs(context.Background(), p)
			if err != nil {
				t.Fatalf("%v (simulator refused: %v)", err, sim.Errors())
			}
			want := []string{"0000:4b:00.0", "0000:4b:00.1", "0000:4b:00.2"}
			if !reflect.DeepEqual(vfs, want) {
				t.Fatalf("VFs %v, want %v", vfs, want)
			}
			dev := "bus/pci/devices/"
			var ws []string
			if autoprobe {
				ws = append(ws, dev+"0000:3b:00.0/sriov_drivers_autoprobe <- 0")
			}
			ws = append(ws, dev+"0000:3b:00.0/sriov_numvfs <- 0", dev+"0000:3b:00.0/sriov_numvfs <- 3")
			if autoprobe {
				ws = append(ws, dev+"0000:3b:00.0/sriov_drivers_autoprobe <- 1")
			}
			for _, vf := range want {
				if !autoprobe { // bound to its default driver first
					ws = append(ws, "bus/pci/drivers/simvf/unbind <- "+vf)
				}
				ws = append(ws,
					dev+vf+"/driver_override <- vfio-pci",
					"bus/pci/drivers/vfio-pci/bind <- "+vf,
					dev+vf+"/driver_override <- ")
			}
			if got := e.takeWrites(); !reflect.DeepEqual(got, ws) {
				t.Fatalf("writes:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(ws, "\n  "))
			}
			for _, vf := range want {
				if d, _ := linkBase(filepath.Join(sim.Root, dev, vf, "driver")); d != VFDriver {
					t.Errorf("VF %s bound to %q", vf, d)
				}
			}
			// Reset to the original 2 VFs.
			p.State = StateConfigured
			if err := m.resetVFs(context.Background(), p); err != nil {
				t.Fatal(err)
			}
			if got := sim.VFs("ens1f0"); len(got) != 2 {
				t.Fatalf("after reset %d VFs, want 2", len(got))
			}
			if errs := sim.Errors(); len(errs) != 0 {
				t.Fatalf("the simulated kernel refused writes: %v", errs)
			}
		})
	}
}

func TestVFCountTooHigh(t *testing.T) {
	e := newEnv(t, []envPF{{name: "ens1f0", pci: "0000:3b:00.0", mac: "aa:00:00:00:00:01", mtu: 1500, total: 4}},
		Options{VFCount: 6}, sriovsim.Options{}, "w1")
	_, err := e.m.Up(context.Background(), e.nodes, []string{"w1"})
	if err == nil || !strings.Contains(err.Error(), "1 with fewer VFs than VFS_COUNT=6 (sriov_totalvfs: ens1f0 4)") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("got %v", err)
	}
	if len(e.takeWrites()) != 0 {
		t.Fatal("sysfs was written although a check failed")
	}
}

func checkAllHome(t *testing.T, e *env, pfs []envPF) {
	t.Helper()
	for _, p := range pfs {
		ns, l := e.net.where(p.name)
		if ns != 0 || l == nil {
			t.Errorf("%s: in namespace %d, want the host", p.name, ns)
			continue
		}
		if l.MAC != p.mac || l.MTU != p.mtu || l.Up != p.up || l.Alias != "" {
			t.Errorf("%s back as %+v, want MAC %s MTU %d up %t and no alias", p.name, *l, p.mac, p.mtu, p.up)
		}
		if n := len(e.sim.VFs(p.name)); n != 0 {
			t.Errorf("%s still has %d VFs", p.name, n)
		}
	}
	if l, err := ReadLedger(e.opts.StateDir, e.opts.Cluster); l != nil || err != nil {
		t.Errorf("ledger still there (%v) after everything came back", err)
	}
}

func TestUpAndReturn(t *testing.T) {
	for _, perNode := range []int{1, 2} {
		t.Run(fmt.Sprintf("PF_COUNT_PER_NODE=%d", perNode), func(t *testing.T) {
			e := newEnv(t, fourPFs, Options{PFCountPerNode: perNode, VFCount: 3}, sriovsim.Options{}, "w1", "w2")
			var points []string
			e.m.hook = func(p string) { points = append(points, p) }
			as, err := e.m.Up(context.Background(), e.nodes, []string{"w1", "w2"})
			if err != nil {
				t.Fatalf("%v (simulator: %v)", err, e.sim.Errors())
			}
			byPCI := []string{"ens1f0", "ens1f1", "ens1f10", "ens2f0"}
			for i, a := range as {
				want := byPCI[i*perNode : (i+1)*perNode]
				if got := pfNames(as, a.Node); !reflect.DeepEqual(got, want) {
					t.Fatalf("node %s got %v, want %v", a.Node, got, want)
				}
				for _, name := range want {
					ns, l := e.net.where(name)
					if ns != e.nodes.pids[a.Node] || !l.Up {
						t.Fatalf("%s: namespace %d up %t, want node %s's (%d) and up", name, ns, l.Up, a.Node, e.nodes.pids[a.Node])
					}
					if n := len(e.sim.VFs(name)); n != 3 {
						t.Fatalf("%s has %d VFs, want 3", name, n)
					}
				}
			}
			l, err := ReadLedger(e.opts.StateDir, e.opts.Cluster)
			if err != nil || l == nil || len(l.PFs) != 2*perNode {
				t.Fatalf("ledger %+v, %v", l, err)
			}
			for _, p := range l.PFs {
				if p.State != StateConfigured {
					t.Fatalf("PF %s state %s", p.Name, p.State)
				}
			}
			if want := 1 + 4*2*perNode; len(points) != want || points[0] != "ledger-written" {
				t.Fatalf("step points %v", points)
			}

			st, err := e.m.Status(context.Background(), e.nodes)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			FormatStatus(&buf, st)
			out := buf.String()
			for _, want := range []string{"node w1", "PF ens1f0  0000:3b:00.0  in node  configured  VFs 3/8", "VF 2  0000:4b:00.2  vfio-pci"} {
				if !strings.Contains(out, want) {
					t.Fatalf("status lacks %q:\n%s", want, out)
				}
			}
			// Status run without the sysfs root the cluster was made with
			// (`make status` after `make sim-cluster-up`) reads the one the
			// ledger recorded.
			other := *e.m
			other.sys = sysfs{root: filepath.Join(t.TempDir(), "not-the-sysfs")}
			st, err = other.Status(context.Background(), e.nodes)
			if err != nil {
				t.Fatal(err)
			}
			buf.Reset()
			FormatStatus(&buf, st)
			if !strings.Contains(buf.String(), "VFs 3/8") || strings.Contains(buf.String(), "no such file") {
				t.Fatalf("status with another SRIOV_SYSFS_ROOT does not read the ledger's:\n%s", buf.String())
			}

			if err := e.m.Return(context.Background(), e.nodes); err != nil {
				t.Fatal(err)
			}
			checkAllHome(t, e, fourPFs)
			// Rerunnable: nothing to do.
			if err := e.m.Return(context.Background(), e.nodes); err != nil {
				t.Fatal(err)
			}
			st, _ = e.m.Status(context.Background(), e.nodes)
			buf.Reset()
			FormatStatus(&buf, st)
			if !strings.Contains(buf.String(), "holds no PFs") {
				t.Fatalf("status after return: %s", buf.String())
			}
		})
	}
}

// TestReturnNamesChanged: the node renamed a PF and changed its MTU, MAC
// and state; another node died and the kernel handed its PF back under a
// fallback name because the original name was taken meanwhile.
func TestReturnNamesChanged(t *testing.T) {
	e := newEnv(t, fourPFs, Options{PFCountPerNode: 2, VFCount: 2}, sriovsim.Options{}, "w1", "w2")
	if _, err := e.m.Up(context.Background(), e.nodes, []string{"w1", "w2"}); err != nil {
		t.Fatal(err)
	}
	// In w1: ens1f0 renamed to net5, MTU/MAC changed.
	e.net.mu.Lock()
	l := e.net.find(1000, "ens1f0")
	l.Name, l.MTU, l.MAC = "net5", 1280, "02:00:00:00:00:99"
	e.net.mu.Unlock()
	// w2 dies; its PFs come back to the host. Someone took the name ens1f10
	// on the host meanwhile, so that one comes back as dev<index>.
	e.net.add(0, linkInfo{Name: "ens1f10", MAC: "02:11:11:11:11:11", MTU: 1500})
	e.nodes.remove("w2")
	e.net.killNode(1001, true)

	err := e.m.Return(context.Background(), e.nodes)
	if err == nil || !strings.Contains(err.Error(), "cannot rename it back to ens1f10") || !strings.Contains(err.Error(), "1 of 4") {
		t.Fatalf("want an error naming ens1f10 only, got %v", err)
	}
	l2, _ := ReadLedger(e.opts.StateDir, e.opts.Cluster)
	if l2 == nil {
		t.Fatal("ledger removed although a PF is not back")
	}
	// The user frees the name and runs cluster-down again.
	e.net.mu.Lock()
	for i, x := range e.net.ns[0] {
		if x.Name == "ens1f10" && x.MAC == "02:11:11:11:11:11" {
			e.net.ns[0] = append(e.net.ns[0][:i], e.net.ns[0][i+1:]...)
			break
		}
	}
	e.net.mu.Unlock()
	if err := e.m.Return(context.Background(), e.nodes); err != nil {
		t.Fatal(err)
	}
	checkAllHome(t, e, fourPFs)
}

func TestReturnWaitsForKernel(t *testing.T) {
	e := newEnv(t, fourPFs[:2], Options{PFCountPerNode: 1, VFCount: 2, ReturnWait: 5 * time.Second}, sriovsim.Options{}, "w1", "w2")
	if _, err := e.m.Up(context.Background(), e.nodes, []string{"w1", "w2"}); err != nil {
		t.Fatal(err)
	}
	// The node container is gone, its namespace dies later.
	e.nodes.remove("w1")
	go func() {
		time.Sleep(200 * time.Millisecond)
		e.net.killNode(1000, true)
	}()
	start := time.Now()
	if err := e.m.Return(context.Background(), e.nodes); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 3*time.Second {
		t.Fatalf("Return took %s; it should wait for the hand-back (200ms) and not much more", d)
	}
	checkAllHome(t, e, fourPFs[:2])
}

func TestReturnPFLostStaysInLedger(t *testing.T) {
	e := newEnv(t, fourPFs[:2], Options{PFCountPerNode: 1, VFCount: 2, ReturnWait: 100 * time.Millisecond}, sriovsim.Options{}, "w1", "w2")
	if _, err := e.m.Up(context.Background(), e.nodes, []string{"w1", "w2"}); err != nil {
		t.Fatal(err)
	}
	e.nodes.remove("w1")
	e.net.killNode(1000, false) // virtual devices die with their namespace
	err := e.m.Return(context.Background(), e.nodes)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 SR-IOV PFs are not back") || !strings.Contains(err.Error(), "ens1f0 (0000:3b:00.0): node w1 is gone") {
		t.Fatalf("got %v", err)
	}
	l, _ := ReadLedger(e.opts.StateDir, e.opts.Cluster)
	if l == nil || l.PFs[0].State == StateReturned || l.PFs[1].State != StateReturned {
		t.Fatalf("ledger after a partial return: %+v", l)
	}
	// Another cluster cannot take the lost PF's address.
	e2 := e.manager(Options{Cluster: "other", SysfsRoot: e.opts.SysfsRoot, StateDir: e.opts.StateDir, VFCount: 2})
	e.nodes.pids["o1"] = 1001
	plan, err := e2.Check(context.Background(), []string{"o1"})
	if err != nil {
		t.Fatal(err)
	}
	if names(plan.Assignments[0].PFs) != "ens1f1" {
		t.Fatalf("other cluster got %s", names(plan.Assignments[0].PFs))
	}
}

func TestUpRollsBackOnFailure(t *testing.T) {
	e := newEnv(t, fourPFs, Options{PFCountPerNode: 2, VFCount: 2}, sriovsim.Options{}, "w1", "w2")
	e.net.failMove = 3 // the third PF fails to move
	_, err := e.m.Up(context.Background(), e.nodes, []string{"w1", "w2"})
	if err == nil || !strings.Contains(err.Error(), "injected failure") || !strings.Contains(err.Error(), "rolled back: every PF is back") {
		t.Fatalf("got %v", err)
	}
	checkAllHome(t, e, fourPFs)
}

func TestUpInterrupted(t *testing.T) {
	e := newEnv(t, fourPFs, Options{PFCountPerNode: 2, VFCount: 2}, sriovsim.Options{}, "w1", "w2")
	ctx, cancel := context.WithCancel(context.Background())
	e.m.hook = func(p string) {
		if strings.HasPrefix(p, "moved:") {
			cancel() // Ctrl-C after the first move
		}
	}
	_, err := e.m.Up(ctx, e.nodes, []string{"w1", "w2"})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("got %v", err)
	}
	checkAllHome(t, e, fourPFs)
}

// TestReturnAfterCrash: the process died at each step boundary of Up (no
// rollback ran); Return alone brings everything back.
func TestReturnAfterCrash(t *testing.T) {
	for _, crashAt := range []string{"ledger-written", "moved-unrecorded:0000:3b:00.0", "moved:0000:3b:00.0", "configured-unrecorded:0000:3b:00.1", "moved:0000:af:00.0", "configured:0000:3b:00.0", "configured:0000:af:00.0"} {
		t.Run(crashAt, func(t *testing.T) {
			e := newEnv(t, fourPFs, Options{PFCountPerNode: 2, VFCount: 2}, sriovsim.Options{}, "w1", "w2")
			type crash struct{}
			e.m.hook = func(p string) {
				if p == crashAt {
					panic(crash{})
				}
			}
			func() {
				defer func() {
					if r := recover(); r != nil {
						if _, ok := r.(crash); !ok {
							panic(r)
						}
					}
				}()
				e.m.Up(context.Background(), e.nodes, []string{"w1", "w2"})
				t.Fatal("no crash")
			}()
			// No rollback ran (the panic skipped it, as a crash would).
			if err := e.manager(e.opts).Return(context.Background(), e.nodes); err != nil {
				t.Fatal(err)
			}
			checkAllHome(t, e, fourPFs)
		})
	}
}

func TestOtherClusterExcludesPFs(t *testing.T) {
	e := newEnv(t, fourPFs, Options{PFCountPerNode: 1, VFCount: 2}, sriovsim.Options{}, "a1", "b1")
	a := e.manager(Options{Cluster: "a", SysfsRoot: e.opts.SysfsRoot, StateDir: e.opts.StateDir, VFCount: 2, SysfsTimeout: 5 * time.Second, LockTimeout: time.Second})
	b := e.manager(Options{Cluster: "b", SysfsRoot: e.opts.SysfsRoot, StateDir: e.opts.StateDir, VFCount: 2, SysfsTimeout: 5 * time.Second, LockTimeout: time.Second, Blacklist: []string{"ens1f10", "ens2f0"}})
	asA, err := a.Up(context.Background(), e.nodes, []string{"a1"})
	if err != nil {
		t.Fatal(err)
	}
	// ens1f0 moved into a1: b can't see it on the host anyway; return it to
	// the host but keep a's ledger, as if a's cluster-down had not run yet.
	_ = asA
	l, _ := ReadLedger(e.opts.StateDir, "a")
	if err := a.Return(context.Background(), e.nodes); err != nil {
		t.Fatal(err)
	}
	l.PFs[0].State = StateConfigured
	if err := writeLedger(e.opts.StateDir, l); err != nil {
		t.Fatal(err)
	}
	_, err = b.Up(context.Background(), e.nodes, []string{"b1"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := ReadLedger(e.opts.StateDir, "b"); got.PFs[0].Name != "ens1f1" {
		t.Fatalf("cluster b took %s, want ens1f1 (ens1f0 is a's)", got.PFs[0].Name)
	}
	b.Return(context.Background(), e.nodes)

	// Only ens1f0 left for b, and a holds it.
	b2 := e.manager(Options{Cluster: "b", SysfsRoot: e.opts.SysfsRoot, StateDir: e.opts.StateDir, VFCount: 2, Blacklist: []string{"ens1f1", "ens1f10", "ens2f0"}})
	_, err = b2.Up(context.Background(), e.nodes, []string{"b1"})
	if err == nil || !strings.Contains(err.Error(), `ens1f0 by cluster "a"`) {
		t.Fatalf("got %v", err)
	}
}

func TestChecks(t *testing.T) {
	t.Run("all failing at once", func(t *testing.T) {
		e := newEnv(t, fourPFs, Options{}, sriovsim.Options{NoIOMMU: true, NoVFIO: true}, "w1")
		e.m.euid = func() int { return 1000 }
		e.m.initialNetns = func() (bool, error) { return false, nil }
		e.m.run = (&cmdrun.Fake{}).On("modprobe: FATAL: Module vfio-pci not found", errors.New("exit status 1"), "modprobe", "--dry-run", "vfio-pci")
		_, err := e.m.Check(context.Background(), []string{"w1"})
		for _, want := range []string{"needs root", "initial network namespace", "IOMMU is off", "vfio-pci driver is not loaded", "Module vfio-pci not found"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
		_, err = e.m.Up(context.Background(), e.nodes, []string{"w1"})
		if err == nil || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("Up: %v", err)
		}
		if _, l := e.net.where("ens1f0"); l.Alias != "" {
			t.Fatal("a PF was touched although checks failed")
		}
	})
	t.Run("vfio loadable", func(t *testing.T) {
		e := newEnv(t, fourPFs, Options{}, sriovsim.Options{NoVFIO: true}, "w1")
		e.m.run = (&cmdrun.Fake{}).On("", nil, "modprobe", "--dry-run", "vfio-pci")
		if _, err := e.m.Check(context.Background(), []string{"w1"}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("uplink never taken", func(t *testing.T) {
		e := newEnv(t, fourPFs, Options{PFCountPerNode: 2}, sriovsim.Options{}, "w1")
		found, err := e.m.Discover()
		if err != nil {
			t.Fatal(err)
		}
		uplink := found[0]
		e.m.uplinks = func() (map[int]bool, error) { return map[int]bool{uplink.Index: true}, nil }
		plan, err := e.m.Check(context.Background(), []string{"w1"})
		if err != nil {
			t.Fatal(err)
		}
		for _, pf := range plan.Assignments[0].PFs {
			if pf.Name == uplink.Name {
				t.Fatalf("the PF carrying the default route was assigned: %v", plan.Assignments)
			}
		}
		_, err = e.m.Check(context.Background(), []string{"w1", "w2"})
		if err == nil || !strings.Contains(err.Error(), uplink.Name+", which carries the host's default route") {
			t.Fatalf("too few PFs must say the uplink was not counted: %v", err)
		}
	})
	t.Run("own ledger exists", func(t *testing.T) {
		e := newEnv(t, fourPFs, Options{}, sriovsim.Options{}, "w1")
		writeLedger(e.opts.StateDir, &Ledger{Version: LedgerVersion, Cluster: "test", SysfsRoot: e.opts.SysfsRoot})
		_, err := e.m.Check(context.Background(), []string{"w1"})
		if err == nil || !strings.Contains(err.Error(), "already holds SR-IOV PFs") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("no worker", func(t *testing.T) {
		e := newEnv(t, fourPFs, Options{}, sriovsim.Options{})
		if _, err := e.m.Check(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "at least one worker") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("node not running", func(t *testing.T) {
		e := newEnv(t, fourPFs, Options{}, sriovsim.Options{}, "w1")
		_, err := e.m.Up(context.Background(), e.nodes, []string{"w1", "w9"})
		if err == nil || !strings.Contains(err.Error(), "node w9") || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("got %v", err)
		}
		if l, _ := ReadLedger(e.opts.StateDir, "test"); l != nil {
			t.Fatal("ledger written although nothing could move")
		}
	})
	t.Run("sysfs root differs from the ledger's", func(t *testing.T) {
		e := newEnv(t, fourPFs, Options{VFCount: 2}, sriovsim.Options{}, "w1")
		if _, err := e.m.Up(context.Background(), e.nodes, []string{"w1"}); err != nil {
			t.Fatal(err)
		}
		o := e.opts
		o.SysfsRoot = "/sys"
		err := e.manager(o).Return(context.Background(), e.nodes)
		if err == nil || !strings.Contains(err.Error(), "written with SRIOV_SYSFS_ROOT=") {
			t.Fatalf("got %v", err)
		}
		if err := e.m.Return(context.Background(), e.nodes); err != nil {
			t.Fatal(err)
		}
	})
}

// loaderRunner plays modprobe: it creates the driver directory, as loading
// the module does.
type loaderRunner struct {
	dir   string
	calls []string
}

func (l *loaderRunner) Run(_ context.Context, _ io.Reader, name string, args ...string) ([]byte, error) {
	l.calls = append(l.calls, name+" "+strings.Join(args, " "))
	if name == "modprobe" && len(args) == 1 && args[0] == "vfio-pci" {
		os.MkdirAll(l.dir, 0o755)
		os.WriteFile(filepath.Join(l.dir, "bind"), nil, 0o644)
		os.WriteFile(filepath.Join(l.dir, "unbind"), nil, 0o644)
	}
	return nil, nil
}

func TestEnsureVFIOLoadsModule(t *testing.T) {
	e := newEnv(t, fourPFs, Options{}, sriovsim.Options{NoVFIO: true})
	r := &loaderRunner{dir: filepath.Join(e.sim.Root, "bus/pci/drivers/vfio-pci")}
	e.m.run = r
	if err := e.m.ensureVFIO(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.m.ensureVFIO(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.calls, []string{"modprobe vfio-pci"}) {
		t.Fatalf("calls %v, want one modprobe", r.calls)
	}
}

func TestHostLock(t *testing.T) {
	dir := t.TempDir()
	l1, err := acquireLock(context.Background(), dir, "cluster a", time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	var told string
	_, err = acquireLock(context.Background(), dir, "cluster b", 50*time.Millisecond, func(h string) { told = h })
	if err == nil || !strings.Contains(err.Error(), "held by cluster a") || !strings.Contains(told, "cluster a") {
		t.Fatalf("second lock: %v (told %q)", err, told)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		l1.release()
	}()
	l2, err := acquireLock(context.Background(), dir, "cluster b", 2*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	l2.release()
}

// fakeExec runs PrepareNode's script on a node described by its fields:
// the script itself is checked on a real shell in TestPrepareScript.
type fakeExec struct {
	calls   []string
	mounts  string
	noVFIO  bool
	mode    string
	failing bool
}

func (f *fakeExec) Exec(_ context.Context, node string, args ...string) ([]byte, error) {
	f.calls = append(f.calls, node+": "+strings.Join(args[:2], " "))
	if f.failing {
		return nil, errors.New("mount: /sys: permission denied: exit status 32")
	}
	first := "vfio " + f.mode
	if f.noVFIO {
		first = "vfio missing"
	}
	return []byte(first + "\n" + f.mounts), nil
}

func TestPrepareNode(t *testing.T) {
	rw := "sysfs /sys sysfs ro,nosuid 0 0\nproc /proc proc rw 0 0\nsysfs /sys sysfs rw,nosuid 0 0\n"
	f := &fakeExec{mounts: rw, mode: "666"}
	if err := PrepareNode(context.Background(), f, "w1"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"w1: sh -c"}; !reflect.DeepEqual(f.calls, want) {
		t.Fatalf("calls %q, want one command", f.calls)
	}
	err := PrepareNode(context.Background(), &fakeExec{mounts: rw, noVFIO: true}, "w1")
	if !errors.Is(err, ErrNoVFIODevice) {
		t.Fatalf("missing /dev/vfio/vfio: %v", err)
	}
	err = PrepareNode(context.Background(), &fakeExec{mounts: "sysfs /sys sysfs ro 0 0\n", mode: "666"}, "w1")
	if err == nil || !strings.Contains(err.Error(), "still not mounted read-write") {
		t.Fatalf("ro /sys: %v", err)
	}
	err = PrepareNode(context.Background(), &fakeExec{mounts: rw, mode: "600"}, "w1")
	if err == nil || !strings.Contains(err.Error(), "mode 600") {
		t.Fatalf("chmod without effect: %v", err)
	}
	err = PrepareNode(context.Background(), &fakeExec{failing: true}, "w1")
	if err == nil || !strings.Contains(err.Error(), "node w1") || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("failing script: %v", err)
	}
	if NodeLabelKey+"="+NodeLabelValue != "sriov_capable=true" {
		t.Fatal("label")
	}
}

// TestPrepareScript runs PrepareNode's script with sh, mount, stat and cat
// that act on a folder instead of the node: its output is what PrepareNode
// parses, and a failing remount fails it.
func TestPrepareScript(t *testing.T) {
	for _, c := range []struct {
		name, vfio, mountExit, want string
		fails                       bool
	}{
		{name: "ready", vfio: "c", mountExit: "0", want: "vfio 666"},
		{name: "no vfio", vfio: "", mountExit: "0", want: "vfio missing"},
		{name: "remount fails", vfio: "c", mountExit: "32", fails: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			bin := t.TempDir()
			stub := func(name, body string) {
				if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			// The device test is the shell's own: the case decides it.
			stub("mount", "echo \"mount $*\" >>"+bin+"/log; exit "+c.mountExit)
			stub("chmod", "echo \"chmod $*\" >>"+bin+"/log")
			stub("stat", "echo 666")
			stub("cat", "echo 'sysfs /sys sysfs rw 0 0'")
			script := strings.ReplaceAll(prepareScript, "[ -c "+VFIODevice+" ]", "[ -n '"+c.vfio+"' ]")
			cmd := exec.Command("/bin/sh", "-c", script)
			cmd.Env = []string{"PATH=" + bin}
			out, err := cmd.Output()
			if c.fails {
				if err == nil {
					t.Fatalf("the script succeeded though the remount failed: %q", out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			first, rest, _ := strings.Cut(string(out), "\n")
			if first != c.want || rest != "sysfs /sys sysfs rw 0 0\n" {
				t.Errorf("output %q, want %q then the mounts", out, c.want)
			}
			log, _ := os.ReadFile(filepath.Join(bin, "log"))
			want := "mount -o remount,rw /sys\n"
			if c.vfio != "" {
				want += "chmod 0666 " + VFIODevice + "\n"
			}
			if string(log) != want {
				t.Errorf("commands %q, want %q", log, want)
			}
		})
	}
}

// TestReturnAfterCrashDuringReturn: a previous Return put a PF back
// completely (alias included) but died before recording it; another PF was
// moved back but not yet renamed. The next Return finds both.
func TestReturnAfterCrashDuringReturn(t *testing.T) {
	e := newEnv(t, fourPFs[:2], Options{PFCountPerNode: 1, VFCount: 2}, sriovsim.Options{}, "w1", "w2")
	if _, err := e.m.Up(context.Background(), e.nodes, []string{"w1", "w2"}); err != nil {
		t.Fatal(err)
	}
	host, _ := e.net.Host()
	for pid, name := range map[int]string{1000: "ens1f0", 1001: "ens1f1"} {
		node, _ := e.net.Node(pid)
		links, _ := node.Links()
		l, _ := linkByName(links, name)
		if err := node.MoveTo(l.Index, host); err != nil {
			t.Fatal(err)
		}
	}
	e.net.mu.Lock()
	done := e.net.find(0, "ens1f0") // fully restored: found by its MAC only
	done.Alias, done.MTU, done.Up = "", 9000, false
	half := e.net.find(0, "ens1f1") // renamed by the kernel, marker still on
	half.Name = "dev42"
	e.net.mu.Unlock()
	if err := e.m.Return(context.Background(), e.nodes); err != nil {
		t.Fatal(err)
	}
	checkAllHome(t, e, fourPFs[:2])
}

// TestReturnNumVFsUnreadable: cluster-up was killed in the middle of a
// write to sriov_numvfs on a sysfs where writing truncates first (a
// simulated one), leaving the file empty. The return still restores the
// original VF count.
func TestReturnNumVFsUnreadable(t *testing.T) {
	e := newEnv(t, fourPFs[:2], Options{PFCountPerNode: 1, VFCount: 2}, sriovsim.Options{}, "w1", "w2")
	if _, err := e.m.Up(context.Background(), e.nodes, []string{"w1", "w2"}); err != nil {
		t.Fatal(err)
	}
	numvfs := filepath.Join(e.m.sys.pciDevice(fourPFs[0].pci), "sriov_numvfs")
	if n, err := e.m.sys.readInt(numvfs); err != nil || n != 2 {
		t.Fatalf("after Up, %s = %d (%v), want 2", numvfs, n, err)
	}
	if err := os.WriteFile(numvfs, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Return(context.Background(), e.nodes); err != nil {
		t.Fatal(err)
	}
	checkAllHome(t, e, fourPFs[:2])
}

// TestUpNodeDiesMidway: a node container stops while Up runs. Up notices
// at the end, and rolls back through the namespace it still holds open.
func TestUpNodeDiesMidway(t *testing.T) {
	e := newEnv(t, fourPFs, Options{PFCountPerNode: 2, VFCount: 2}, sriovsim.Options{}, "w1", "w2")
	e.m.hook = func(p string) {
		if p == "moved:0000:3b:00.0" {
			e.nodes.remove("w1")
		}
	}
	_, err := e.m.Up(context.Background(), e.nodes, []string{"w1", "w2"})
	if err == nil || !strings.Contains(err.Error(), "node w1 stopped during the SR-IOV setup") || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("got %v", err)
	}
	checkAllHome(t, e, fourPFs)
}

// TestUpInterruptedAtTheEnd: Ctrl-C once every PF is configured (the
// container CLI dies with the tool, so the node check cannot run). Up
// reports the interruption, not a stopped node, and rolls back.
func TestUpInterruptedAtTheEnd(t *testing.T) {
	e := newEnv(t, fourPFs[:2], Options{PFCountPerNode: 1, VFCount: 2}, sriovsim.Options{}, "w1", "w2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	configured := 0
	e.m.hook = func(p string) {
		if strings.HasPrefix(p, "configured:") {
			if configured++; configured == 2 {
				cancel()
			}
		}
	}
	_, err := e.m.Up(ctx, e.nodes, []string{"w1", "w2"})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted") || strings.Contains(err.Error(), "stopped") || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("want an interruption (context.Canceled) that was rolled back, got %v", err)
	}
	checkAllHome(t, e, fourPFs[:2])
}

func TestContainerNodes(t *testing.T) {
	f := (&cmdrun.Fake{}).
		On("4242\n", nil, "podman", "inspect", "--format", "{{.State.Pid}}", "sriov-worker").
		On("0\n", nil, "podman", "inspect", "--format", "{{.State.Pid}}", "sriov-worker2").
		On("", errors.New("exit status 125"), "podman", "inspect").
		On("rw\n", nil, "podman", "exec", "sriov-worker", "cat")
	c := ContainerNodes{Run: f, CLI: "podman"}
	if pid, err := c.PID(context.Background(), "sriov-worker"); pid != 4242 || err != nil {
		t.Fatalf("PID: %d %v", pid, err)
	}
	if _, err := c.PID(context.Background(), "sriov-worker2"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("stopped container: %v", err)
	}
	if _, err := c.PID(context.Background(), "gone"); err == nil || !strings.Contains(err.Error(), "podman inspect --format") {
		t.Fatalf("missing container: %v", err)
	}
	if out, err := c.Exec(context.Background(), "sriov-worker", "cat", "/proc/self/mounts"); string(out) != "rw\n" || err != nil {
		t.Fatalf("Exec: %q %v", out, err)
	}
	var _ Nodes = c
	var _ NodeExec = c
}

// Several netdevs on one PCI function (the ports of a multi-port function,
// switchdev representors) are one PF, moved by its first port.
func TestDiscoverCountsAFunctionOnce(t *testing.T) {
	root := t.TempDir()
	fn := filepath.Join(root, "devices", "pci0000:00", "0000:3b:00.0")
	other := filepath.Join(root, "devices", "pci0000:00", "0000:5e:00.0")
	for _, d := range []string{fn, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "sriov_totalvfs"), []byte("8\n"), 0o644)
		os.WriteFile(filepath.Join(d, "sriov_numvfs"), []byte("0\n"), 0o644)
	}
	netdev := func(name, dev, port string, devPort int) linkInfo {
		dir := filepath.Join(root, "class", "net", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(dev, filepath.Join(dir, "device")); err != nil {
			t.Fatal(err)
		}
		if port != "" {
			os.WriteFile(filepath.Join(dir, "phys_port_name"), []byte(port+"\n"), 0o644)
		}
		os.WriteFile(filepath.Join(dir, "dev_port"), []byte(fmt.Sprintf("%d\n", devPort)), 0o644)
		return linkInfo{Name: name}
	}
	links := []linkInfo{
		netdev("rep0", fn, "pf0vf0", 0), // a VF representor of the PF
		netdev("p1", fn, "p1", 1),       // the function's second port
		netdev("p0", fn, "p0", 0),
		netdev("q0", other, "", 0),
	}
	pfs, err := discover(sysfs{root: root}, links)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pfs {
		got = append(got, p.Name+"@"+p.PCI)
	}
	if want := []string{"p0@0000:3b:00.0", "q0@0000:5e:00.0"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("discovered %v, want %v: one PF per PCI function, by its first port", got, want)
	}
}

// The uplink guard covers the links under one that carries the default
// route: bond and bridge members, a VLAN's lower device, stacked.
func TestWithLowerLinks(t *testing.T) {
	// 1 eth0 (plain uplink); 2 ens1f0 and 3 ens1f1 in bond 4; 5 vlan on
	// bond 4 carries the route; 6 ens2f0 in bridge 7, 8 vlan on 9 ens3f0,
	// neither carrying anything; 10 br0 carries a route, 11 vlan on 12
	// ens4f0 is a port of br0.
	links := []linkStack{
		{index: 1}, {index: 2, master: 4}, {index: 3, master: 4}, {index: 4}, {index: 5, parent: 4},
		{index: 6, master: 7}, {index: 7}, {index: 8, parent: 9}, {index: 9},
		{index: 10}, {index: 11, parent: 12, master: 10}, {index: 12},
	}
	got := withLowerLinks(map[int]bool{1: true, 5: true, 10: true}, links)
	for i, want := range map[int]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: false, 7: false, 8: false, 9: false, 10: true, 11: true, 12: true} {
		if got[i] != want {
			t.Errorf("link %d: uplink %v, want %v", i, got[i], want)
		}
	}
}

// The lock is never opened through a symbolic link, and a state directory
// that other users can write to is refused.
func TestStateDirAndLockSafety(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Symlink(target, filepath.Join(dir, "lock")); err != nil {
		t.Fatal(err)
	}
	if _, err := acquireLock(context.Background(), dir, "test", time.Second, nil); err == nil || !strings.Contains(err.Error(), "not a symbolic link") {
		t.Errorf("lock through a symlink: %v", err)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the symlink's target was created (%v)", err)
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.MkdirAll(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := acquireLock(context.Background(), open, "test", time.Second, nil); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("world-writable state dir: %v", err)
	}
}

// Ledger values are checked before they become sysfs paths or link names.
func TestLedgerValidated(t *testing.T) {
	good := LedgerPF{PCI: "0000:3b:00.0", Node: "sriov-worker", Name: "ens1f0", State: StateMoved, NumVFs: 0, TotalVFs: 8}
	for _, c := range []struct {
		field string
		edit  func(p *LedgerPF)
	}{
		{"PCI address", func(p *LedgerPF) { p.PCI = "../../../kernel" }},
		{"name", func(p *LedgerPF) { p.Name = "a/b" }},
		{"node", func(p *LedgerPF) { p.Node = "" }},
		{"VF count", func(p *LedgerPF) { p.NumVFs = 9 }},
		{"sriov_drivers_autoprobe", func(p *LedgerPF) { p.Autoprobe = "1; reboot" }},
		{"state", func(p *LedgerPF) { p.State = "gone" }},
		{"parent device", func(p *LedgerPF) { p.ParentDev = "x" }},
	} {
		pf := good
		c.edit(&pf)
		dir := t.TempDir()
		if err := writeLedger(dir, &Ledger{Version: LedgerVersion, Cluster: "sriov", PFs: []LedgerPF{pf}}); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadLedger(dir, "sriov"); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("ledger with a bad %s: %v", c.field, err)
		}
	}
	dir := t.TempDir()
	if err := writeLedger(dir, &Ledger{Version: LedgerVersion, Cluster: "sriov", PFs: []LedgerPF{good}}); err != nil {
		t.Fatal(err)
	}
	if l, err := ReadLedger(dir, "sriov"); err != nil || l == nil {
		t.Errorf("a good ledger: %v", err)
	}
}

// cluster-down's order: ReturnNetdevs brings the PFs home and leaves their
// VFs and the ledger; once the nodes are gone, Return restores the VF
// counts and removes the ledger.
func TestReturnNetdevsThenVFs(t *testing.T) {
	e := newEnv(t, fourPFs, Options{PFCountPerNode: 2, VFCount: 3}, sriovsim.Options{}, "w1", "w2")
	if _, err := e.m.Up(context.Background(), e.nodes, []string{"w1", "w2"}); err != nil {
		t.Fatalf("%v (simulator: %v)", err, e.sim.Errors())
	}
	if err := e.m.ReturnNetdevs(context.Background(), e.nodes); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ens1f0", "ens1f1", "ens1f10", "ens2f0"} {
		if ns, _ := e.net.where(name); ns != 0 {
			t.Errorf("%s is in namespace %d after ReturnNetdevs, want the host's", name, ns)
		}
		if n := len(e.sim.VFs(name)); n != 3 {
			t.Errorf("%s has %d VFs after ReturnNetdevs, want its 3 still (the nodes may hold them)", name, n)
		}
	}
	if l, err := ReadLedger(e.opts.StateDir, e.opts.Cluster); err != nil || l == nil {
		t.Fatalf("the ledger is gone after ReturnNetdevs (%v)", err)
	}
	// The nodes are deleted: Return works from the host alone.
	if err := e.m.Return(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	checkAllHome(t, e, fourPFs)
}

// The host check (before anything is created) refuses what the lock would
// refuse later: a lock that is a link, a state directory others can write.
func TestCheckStateBeforeAnything(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := checkState(dir); err != nil {
		t.Errorf("a state directory still to be made: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkState(dir); err != nil {
		t.Errorf("a good state directory: %v", err)
	}
	if err := os.Symlink(filepath.Join(t.TempDir(), "elsewhere"), filepath.Join(dir, "lock")); err != nil {
		t.Fatal(err)
	}
	if err := checkState(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), "SRIOV_STATE_DIR") {
		t.Errorf("lock through a symlink: %v", err)
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := checkState(open); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("world-writable state dir: %v", err)
	}
}
