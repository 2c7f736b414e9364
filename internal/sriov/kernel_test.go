//go:build linux

package sriov

// Integration tests on the real kernel: veth pairs stand in for PFs (the
// simulator's fake sysfs describes them as SR-IOV capable) and processes in
// a network and a PID namespace of their own (procNodes) stand in for the
// kind worker nodes. They need root and skip under -short.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
	"github.com/kubevirt/kubevirtci-go/internal/sriov/sriovsim"
	"github.com/kubevirt/kubevirtci-go/internal/testlevel"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func skipUnlessRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test on the real kernel: skipped under -short")
	}
	if os.Geteuid() != 0 {
		testlevel.Unavailable(t, "integration test on the real kernel: needs root to create links and move them between network namespaces")
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// procNodes are stand-in nodes: processes in a network namespace and a PID
// namespace of their own, as a node container is. Killing one ends every
// process started in it, as deleting a node container does.
type procNodes struct {
	mu    sync.Mutex
	procs map[string]*exec.Cmd
	dead  map[string]bool
}

func (p *procNodes) PID(_ context.Context, node string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.procs[node]
	if !ok || p.dead[node] {
		return 0, fmt.Errorf("container %s is not running", node)
	}
	return c.Process.Pid, nil
}

func (p *procNodes) start(t testing.TB, node string) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	// Dies with the test process even when that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWPID}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.kill(node) })
	p.mu.Lock()
	p.procs[node] = cmd
	p.mu.Unlock()
	self, _ := os.Readlink("/proc/self/ns/net")
	pid := cmd.Process.Pid
	err := poll(context.Background(), 5*time.Second, "the stand-in node to enter its own network namespace", func() (bool, error) {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		return err == nil && ns != self, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func (p *procNodes) kill(node string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.procs[node]; c != nil && !p.dead[node] {
		c.Process.Kill()
		c.Wait()
		p.dead[node] = true
	}
}

type kernelEnv struct {
	t       testing.TB
	pfs     []envPF
	peers   []string
	sim     *sriovsim.Sim
	nodes   *procNodes
	workers []string
	opts    Options
	m       *Manager
}

// newKernelEnv creates nPF veth pairs described as PFs and nNodes stand-in
// nodes, all removed at the end of the test whatever happens.
func newKernelEnv(t testing.TB, nPF, nNodes int, opts Options) *kernelEnv {
	t.Helper()
	skipUnlessRoot(t)
	prefix := "kvt" + randHex(2)
	e := &kernelEnv{t: t, nodes: &procNodes{procs: map[string]*exec.Cmd{}, dead: map[string]bool{}}}
	var simPFs []sriovsim.PF
	for i := range nPF {
		p := envPF{
			name: fmt.Sprintf("%sp%d", prefix, i),
			mac:  fmt.Sprintf("02:6b:76:%s:%02x", randHex(2)[:2]+":"+randHex(1), i),
			mtu:  1400 + 10*i,
			up:   i%2 == 0,
		}
		peer := fmt.Sprintf("%sq%d", prefix, i)
		hw, _ := net.ParseMAC(p.mac)
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: p.name, MTU: p.mtu, HardwareAddr: hw}, PeerName: peer}
		if err := netlink.LinkAdd(veth); err != nil {
			t.Fatalf("create veth %s: %v", p.name, err)
		}
		t.Cleanup(func() {
			// Deleting the peer deletes the pair, wherever the PF end is.
			if l, err := netlink.LinkByName(peer); err == nil {
				netlink.LinkDel(l)
			}
		})
		if p.up {
			l, _ := netlink.LinkByName(p.name)
			if err := netlink.LinkSetUp(l); err != nil {
				t.Fatal(err)
			}
		}
		e.pfs = append(e.pfs, p)
		e.peers = append(e.peers, peer)
		simPFs = append(simPFs, sriovsim.PF{Name: p.name, TotalVFs: 8})
	}
	sim, err := sriovsim.New(t.TempDir(), simPFs, sriovsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := sim.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })
	e.sim = sim
	for i := range nNodes {
		w := fmt.Sprintf("%s-worker%d", prefix, i+1)
		e.nodes.start(t, w)
		e.workers = append(e.workers, w)
	}
	opts.Cluster = prefix
	opts.SysfsRoot = sim.Root
	opts.StateDir = t.TempDir()
	if opts.SysfsTimeout == 0 {
		opts.SysfsTimeout = 10 * time.Second
	}
	if opts.ReturnWait == 0 {
		opts.ReturnWait = 2 * time.Second
	}
	e.opts = opts
	e.m = e.manager()
	return e
}

func (e *kernelEnv) manager() *Manager {
	m, err := New(e.opts, &cmdrun.Fake{}, debugLog)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// linksOf lists the links of the host (pid 0) or of a stand-in node.
func linksOf(t testing.TB, pid int) []linkInfo {
	t.Helper()
	var ns netNamespace
	var err error
	if pid == 0 {
		ns, err = kernelNet{}.Host()
	} else {
		ns, err = kernelNet{}.Node(pid)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	links, err := ns.Links()
	if err != nil {
		t.Fatal(err)
	}
	return links
}

// checkLent verifies every assigned PF is up in its node and gone from the host.
func (e *kernelEnv) checkLent(t testing.TB, as []Assignment, vfs int) {
	t.Helper()
	host := linksOf(t, 0)
	for _, a := range as {
		pid, err := e.nodes.PID(context.Background(), a.Node)
		if err != nil {
			t.Fatal(err)
		}
		in := linksOf(t, pid)
		for _, pf := range a.PFs {
			if _, ok := linkByName(host, pf.Name); ok {
				t.Fatalf("%s is still in the host namespace", pf.Name)
			}
			l, ok := linkByName(in, pf.Name)
			if !ok || !l.Up {
				t.Fatalf("%s: in node %s %t, up %t", pf.Name, a.Node, ok, l.Up)
			}
			if got := e.sim.VFs(pf.Name); len(got) != vfs {
				t.Fatalf("%s has %d VFs, want %d", pf.Name, len(got), vfs)
			}
		}
	}
}

// checkHome verifies the PFs are in the host with name, MAC, MTU, state and
// alias as before, without VFs, and the ledger is gone.
func (e *kernelEnv) checkHome(t testing.TB, pfs []envPF) {
	t.Helper()
	host := linksOf(t, 0)
	for _, p := range pfs {
		l, ok := linkByName(host, p.name)
		if !ok {
			t.Fatalf("%s is not back in the host namespace", p.name)
		}
		if l.MAC != p.mac || l.MTU != p.mtu || l.Up != p.up || l.Alias != "" {
			t.Fatalf("%s back as MAC %s MTU %d up %t alias %q; want MAC %s MTU %d up %t no alias", p.name, l.MAC, l.MTU, l.Up, l.Alias, p.mac, p.mtu, p.up)
		}
		if n := len(e.sim.VFs(p.name)); n != 0 {
			t.Fatalf("%s still has %d VFs", p.name, n)
		}
	}
	if l, err := ReadLedger(e.opts.StateDir, e.opts.Cluster); l != nil || err != nil {
		t.Fatalf("ledger still there (%v)", err)
	}
	if errs := e.sim.Errors(); len(errs) > 0 {
		t.Fatalf("the simulated kernel refused writes: %v", errs)
	}
}

func TestKernelMoveAndReturn(t *testing.T) {
	e := newKernelEnv(t, 4, 2, Options{PFCountPerNode: 2, VFCount: 4})
	start := time.Now()
	as, err := e.m.Up(context.Background(), e.nodes, e.workers)
	if err != nil {
		t.Fatalf("%v (simulator: %v)", err, e.sim.Errors())
	}
	t.Logf("Up with 4 PFs, 4 VFs each: %s", time.Since(start))
	e.checkLent(t, as, 4)
	for _, pf := range e.sim.VFs(as[0].PFs[0].Name) {
		if d, _ := linkBase(e.sim.Root + "/bus/pci/devices/" + pf + "/driver"); d != VFDriver {
			t.Fatalf("VF %s bound to %q", pf, d)
		}
	}
	st, err := e.m.Status(context.Background(), e.nodes)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	FormatStatus(&buf, st)
	if strings.Count(buf.String(), "in node  configured  VFs 4/8") != 4 || strings.Count(buf.String(), "vfio-pci") != 16 {
		t.Fatalf("status:\n%s", buf.String())
	}
	t.Logf("status:\n%s", buf.String())

	start = time.Now()
	if err := e.m.Return(context.Background(), e.nodes); err != nil {
		t.Fatal(err)
	}
	t.Logf("Return of 4 PFs: %s", time.Since(start))
	e.checkHome(t, e.pfs)
}

func TestKernelInterrupted(t *testing.T) {
	e := newKernelEnv(t, 4, 2, Options{PFCountPerNode: 2, VFCount: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	moved := 0
	e.m.hook = func(p string) {
		if strings.HasPrefix(p, "moved:") {
			moved++
			cancel() // Ctrl-C right after the first PF moved
		}
	}
	_, err := e.m.Up(ctx, e.nodes, e.workers)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "rolled back: every PF is back") || moved != 1 {
		t.Fatalf("moved %d, error %v", moved, err)
	}
	e.checkHome(t, e.pfs)
}

// crashSpec is what the crashing child process needs.
type crashSpec struct {
	Opts    Options
	PIDs    map[string]int
	Workers []string
	CrashAt string
}

type staticNodes map[string]int

func (s staticNodes) PID(_ context.Context, node string) (int, error) { return s[node], nil }

// TestKernelCrashChild runs Up in a child process and SIGKILLs itself at a
// step boundary: no rollback, no deferred function, no lock release runs.
func TestKernelCrashChild(t *testing.T) {
	raw := os.Getenv("SRIOV_CRASH_CHILD")
	if raw == "" {
		t.Skip("child process of TestKernelCrash")
	}
	var spec crashSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	m, err := New(spec.Opts, &cmdrun.Fake{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.hook = func(p string) {
		if p == spec.CrashAt {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	_, err = m.Up(context.Background(), staticNodes(spec.PIDs), spec.Workers)
	t.Fatalf("Up returned without crashing: %v", err)
}

func TestKernelCrash(t *testing.T) {
	skipUnlessRoot(t)
	points := []string{"ledger-written", "moved-unrecorded:0000:81:00.0", "moved:0000:81:00.0", "moved:0000:84:00.0",
		"configured-unrecorded:0000:81:00.0", "configured:0000:82:00.0", "configured:0000:84:00.0"}
	for _, crashAt := range points {
		t.Run(crashAt, func(t *testing.T) {
			e := newKernelEnv(t, 4, 2, Options{PFCountPerNode: 2, VFCount: 3})
			spec := crashSpec{Opts: e.opts, PIDs: map[string]int{}, Workers: e.workers, CrashAt: crashAt}
			for _, w := range e.workers {
				spec.PIDs[w], _ = e.nodes.PID(context.Background(), w)
			}
			raw, _ := json.Marshal(spec)
			cmd := exec.Command(os.Args[0], "-test.run=^TestKernelCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "SRIOV_CRASH_CHILD="+string(raw))
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
			}
			l, err := ReadLedger(e.opts.StateDir, e.opts.Cluster)
			if err != nil || l == nil {
				t.Fatalf("no ledger after the crash: %v", err)
			}
			var inNodes int
			host := linksOf(t, 0)
			for _, p := range e.pfs {
				if _, ok := linkByName(host, p.name); !ok {
					inNodes++
				}
			}
			t.Logf("crashed at %s: %d PFs in nodes, ledger states %v", crashAt, inNodes, states(l))
			// cluster-down in a fresh process (here: a fresh Manager).
			if err := e.manager().Return(context.Background(), e.nodes); err != nil {
				t.Fatal(err)
			}
			e.checkHome(t, e.pfs)
		})
	}
}

func states(l *Ledger) []string {
	var s []string
	for _, p := range l.PFs {
		s = append(s, string(p.State))
	}
	return s
}

// TestKernelNodeKilled: a stand-in node dies while it holds PFs. Veths are
// virtual devices: the kernel destroys them with the namespace instead of
// handing them back as it does for physical NICs. Return must give back the
// other node's PFs, name the lost ones, and keep the ledger.
func TestKernelNodeKilled(t *testing.T) {
	e := newKernelEnv(t, 4, 2, Options{PFCountPerNode: 2, VFCount: 2, ReturnWait: 300 * time.Millisecond})
	as, err := e.m.Up(context.Background(), e.nodes, e.workers)
	if err != nil {
		t.Fatal(err)
	}
	e.nodes.kill(e.workers[0])
	err = e.m.Return(context.Background(), e.nodes)
	lost := as[0].PFs
	if err == nil || !strings.Contains(err.Error(), "2 of 4 SR-IOV PFs are not back") ||
		!strings.Contains(err.Error(), lost[0].Name+" ("+lost[0].PCI+"): node "+e.workers[0]+" is gone") ||
		!strings.Contains(err.Error(), lost[1].Name) {
		t.Fatalf("got %v", err)
	}
	t.Logf("error as the user sees it:\n%v", err)
	l, _ := ReadLedger(e.opts.StateDir, e.opts.Cluster)
	if l == nil || states(l)[0] == string(StateReturned) || states(l)[2] != string(StateReturned) {
		t.Fatalf("ledger: %+v", l)
	}
	e.checkHomeSome(t, e.pfs[2:])
}

func (e *kernelEnv) checkHomeSome(t testing.TB, pfs []envPF) {
	t.Helper()
	host := linksOf(t, 0)
	for _, p := range pfs {
		l, ok := linkByName(host, p.name)
		if !ok || l.MAC != p.mac || l.MTU != p.mtu || l.Up != p.up || l.Alias != "" {
			t.Fatalf("%s not back as it was: %+v", p.name, l)
		}
	}
}

// TestKernelNodeGoneHandBack: a node container is gone (no PID) but its
// namespace lives on for a while, then the PFs reach the host, as the
// kernel does with physical NICs when the namespace is finally destroyed.
// The hand-back is played here with the real kernel: the test keeps the
// namespace open, and moves the links out 300ms later, one of them renamed
// on the way (the kernel renames a returning device whose name is taken).
func TestKernelNodeGoneHandBack(t *testing.T) {
	e := newKernelEnv(t, 4, 2, Options{PFCountPerNode: 2, VFCount: 2, ReturnWait: 10 * time.Second})
	as, err := e.m.Up(context.Background(), e.nodes, e.workers)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := e.nodes.PID(context.Background(), e.workers[0])
	held, err := netns.GetFromPid(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	e.nodes.kill(e.workers[0])

	handedBack := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		h, err := netlink.NewHandleAt(held)
		if err != nil {
			handedBack <- err
			return
		}
		defer h.Close()
		hostNS, _ := netns.GetFromPid(os.Getpid())
		defer hostNS.Close()
		for i, pf := range as[0].PFs {
			l, err := h.LinkByName(pf.Name)
			if err != nil {
				handedBack <- err
				return
			}
			if i == 0 {
				if err := h.LinkSetName(l, fmt.Sprintf("dev%d", l.Attrs().Index)); err != nil {
					handedBack <- err
					return
				}
			}
			if err := h.LinkSetNsFd(l, int(hostNS)); err != nil {
				handedBack <- err
				return
			}
		}
		handedBack <- nil
	}()
	start := time.Now()
	if err := e.m.Return(context.Background(), e.nodes); err != nil {
		t.Fatal(err)
	}
	if err := <-handedBack; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("Return finished in %s, before the PFs were handed back", d)
	}
	t.Logf("Return waited %s for the hand-back", time.Since(start))
	e.checkHome(t, e.pfs)
}

// TestKernelCycles: 100 up/down cycles with 4 PFs and 2 nodes lose nothing.
func TestKernelCycles(t *testing.T) {
	e := newKernelEnv(t, 4, 2, Options{PFCountPerNode: 2, VFCount: 2})
	cycles := 100
	if s := os.Getenv("SRIOV_CYCLES"); s != "" {
		fmt.Sscanf(s, "%d", &cycles)
	}
	start := time.Now()
	var up, down time.Duration
	for i := range cycles {
		t0 := time.Now()
		as, err := e.m.Up(context.Background(), e.nodes, e.workers)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		t1 := time.Now()
		e.checkLent(t, as, 2)
		t2 := time.Now()
		if err := e.m.Return(context.Background(), e.nodes); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		t3 := time.Now()
		e.checkHome(t, e.pfs)
		up += t1.Sub(t0)
		down += t3.Sub(t2)
	}
	t.Logf("%d cycles of 4 PFs / 2 nodes / 2 VFs per PF in %s (Up avg %s, Return avg %s)",
		cycles, time.Since(start).Round(time.Millisecond), (up / time.Duration(cycles)).Round(time.Microsecond), (down / time.Duration(cycles)).Round(time.Microsecond))
}

// BenchmarkMoveIn times moving one PF into a node: alias, move, lookup in
// the node, set up, verify in node and host. The move back is not timed.
func BenchmarkMoveIn(b *testing.B) {
	e := newKernelEnv(b, 1, 1, Options{})
	pid, _ := e.nodes.PID(context.Background(), e.workers[0])
	host, err := kernelNet{}.Host()
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close()
	node, err := kernelNet{}.Node(pid)
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()
	p := &LedgerPF{Name: e.pfs[0].name, PCI: "0000:81:00.0", MAC: e.pfs[0].mac, MTU: e.pfs[0].mtu, Up: e.pfs[0].up, Marker: marker(e.opts.Cluster, "0000:81:00.0")}
	b.ResetTimer()
	for range b.N {
		if err := moveIn(host, node, p); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		nl, _ := node.Links()
		l, _, _ := findPF(nl, p)
		if err := node.MoveTo(l.Index, host); err != nil {
			b.Fatal(err)
		}
		hl, _ := host.Links()
		l, _, _ = findPF(hl, p)
		if err := restoreLink(host, hl, l, p); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkReturnAll times Return (cluster-down's part) for 4 PFs in 2
// live nodes, 2 VFs each: VF reset through the (simulated) sysfs, move
// back, rename, restore, verify, ledger updates. Up is not timed.
func BenchmarkReturnAll(b *testing.B) {
	e := newKernelEnv(b, 4, 2, Options{PFCountPerNode: 2, VFCount: 2})
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if _, err := e.m.Up(context.Background(), e.nodes, e.workers); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := e.m.Return(context.Background(), e.nodes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUp times Up for 4 PFs in 2 nodes with 2 VFs each (checks,
// lock, ledger, moves, VFs). Return is not timed.
func BenchmarkUp(b *testing.B) {
	e := newKernelEnv(b, 4, 2, Options{PFCountPerNode: 2, VFCount: 2})
	b.ResetTimer()
	for range b.N {
		if _, err := e.m.Up(context.Background(), e.nodes, e.workers); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := e.m.Return(context.Background(), e.nodes); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// TestKernelTwoClustersAtOnce: two clusters created at the same moment,
// from separate Managers sharing only the state directory, never take the
// same PF; a third one finds none left and says who holds them.
func TestKernelTwoClustersAtOnce(t *testing.T) {
	e := newKernelEnv(t, 4, 3, Options{PFCountPerNode: 2, VFCount: 2})
	managers := make([]*Manager, 3)
	for i := range managers {
		o := e.opts
		o.Cluster = fmt.Sprintf("%s-c%d", e.opts.Cluster, i)
		m, err := New(o, &cmdrun.Fake{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		managers[i] = m
	}
	results := make([][]Assignment, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, m := range managers {
		wg.Go(func() { results[i], errs[i] = m.Up(context.Background(), e.nodes, e.workers[i:i+1]) })
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, m := range managers {
			m.Return(context.Background(), e.nodes)
		}
	})
	taken := map[string]int{}
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			if !strings.Contains(err.Error(), "not enough SR-IOV PFs: need 2 (1 workers x PF_COUNT_PER_NODE=2), found 0") ||
				!strings.Contains(err.Error(), "other clusters hold 4 more PF(s) outside the host namespace") {
				t.Fatalf("cluster %d: %v", i, err)
			}
			continue
		}
		for _, pf := range results[i][0].PFs {
			if o, dup := taken[pf.Name]; dup {
				t.Fatalf("%s taken by clusters %d and %d", pf.Name, o, i)
			}
			taken[pf.Name] = i
		}
	}
	if failed != 1 || len(taken) != 4 {
		t.Fatalf("%d clusters failed, %d PFs taken; want 1 and 4", failed, len(taken))
	}
	for _, m := range managers {
		if err := m.Return(context.Background(), e.nodes); err != nil {
			t.Fatal(err)
		}
	}
	e.checkHomeSome(t, e.pfs)
}

// TestKernelNodeDiesDuringUp: the stand-in node is killed right after its
// first PF moved in. Up still holds the node's namespace open (so the veths
// survive), notices the node is gone, and brings every PF back.
func TestKernelNodeDiesDuringUp(t *testing.T) {
	e := newKernelEnv(t, 4, 2, Options{PFCountPerNode: 2, VFCount: 2})
	e.m.hook = func(p string) {
		if p == "moved:0000:81:00.0" {
			e.nodes.kill(e.workers[0])
		}
	}
	_, err := e.m.Up(context.Background(), e.nodes, e.workers)
	if err == nil || !strings.Contains(err.Error(), "stopped during the SR-IOV setup") || !strings.Contains(err.Error(), "rolled back: every PF is back") {
		t.Fatalf("got %v", err)
	}
	e.checkHome(t, e.pfs)
}
