package sriov

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
	"github.com/kubevirt/kubevirtci-go/internal/sriov/sriovsim"
	"golang.org/x/sys/unix"
)

// fakeNet is an in-memory kernel: namespaces (0 is the host, others are
// node PIDs) holding links. It behaves like the kernel where this package
// relies on it: indexes change on a move, a move into a namespace that has
// the name fails with EEXIST, a moved link goes down.
type fakeNet struct {
	mu        sync.Mutex
	ns        map[int][]*linkInfo
	nextIndex int
	moves     int
	failMove  int // fail the n-th move (1-based); 0: never
}

func newFakeNet() *fakeNet { return &fakeNet{ns: map[int][]*linkInfo{0: nil}, nextIndex: 100} }

func (w *fakeNet) add(ns int, l linkInfo) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if l.Index == 0 {
		w.nextIndex++
		l.Index = w.nextIndex
	}
	w.ns[ns] = append(w.ns[ns], &l)
}

func (w *fakeNet) addNode(pid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ns[pid] = []*linkInfo{{Index: 1, Name: "eth0", MAC: "02:42:ac:11:00:02", MTU: 1500, Up: true}}
}

// killNode removes a node's namespace; with handBack its links go to the
// host (renamed dev<index> when the name is taken), as the kernel does for
// physical devices; otherwise they are destroyed, as for virtual devices.
func (w *fakeNet) killNode(pid int, handBack bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	links := w.ns[pid]
	delete(w.ns, pid)
	if !handBack {
		return
	}
	for _, l := range links {
		if l.Name == "eth0" {
			continue
		}
		if w.find(0, l.Name) != nil {
			l.Name = fmt.Sprintf("dev%d", l.Index)
		}
		l.Up = false
		w.ns[0] = append(w.ns[0], l)
	}
}

func (w *fakeNet) find(ns int, name string) *linkInfo {
	for _, l := range w.ns[ns] {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// where reports the namespace holding a link with the alias or name.
func (w *fakeNet) where(name string) (int, *linkInfo) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, links := range w.ns {
		for _, l := range links {
			if l.Name == name {
				c := *l
				return id, &c
			}
		}
	}
	return -1, nil
}

func (w *fakeNet) Host() (netNamespace, error) { return &fakeNS{w: w, id: 0}, nil }

func (w *fakeNet) Node(pid int) (netNamespace, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.ns[pid]; !ok || pid == 0 {
		return nil, fmt.Errorf("open /proc/%d/ns/net: no such file or directory", pid)
	}
	return &fakeNS{w: w, id: pid}, nil
}

type fakeNS struct {
	w  *fakeNet
	id int
}

func (n *fakeNS) Close() error { return nil }

func (n *fakeNS) ID() string { return fmt.Sprint(n.id) }

func (n *fakeNS) Links() ([]linkInfo, error) {
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	links, ok := n.w.ns[n.id]
	if !ok {
		return nil, fmt.Errorf("namespace %d is gone", n.id)
	}
	out := make([]linkInfo, len(links))
	for i, l := range links {
		out[i] = *l
	}
	return out, nil
}

func (n *fakeNS) do(index int, f func(l *linkInfo) error) error {
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	for _, l := range n.w.ns[n.id] {
		if l.Index == index {
			return f(l)
		}
	}
	return fmt.Errorf("link %d not in namespace %d: no such device", index, n.id)
}

func (n *fakeNS) SetUp(index int, up bool) error {
	return n.do(index, func(l *linkInfo) error { l.Up = up; return nil })
}

func (n *fakeNS) SetName(index int, name string) error {
	return n.do(index, func(l *linkInfo) error {
		if l.Up {
			return fmt.Errorf("rename %s: device or resource busy", l.Name)
		}
		if o := n.w.find(n.id, name); o != nil {
			return unix.EEXIST
		}
		l.Name = name
		return nil
	})
}

func (n *fakeNS) SetMTU(index, mtu int) error {
	return n.do(index, func(l *linkInfo) error { l.MTU = mtu; return nil })
}

func (n *fakeNS) SetMAC(index int, mac string) error {
	return n.do(index, func(l *linkInfo) error { l.MAC = mac; return nil })
}

func (n *fakeNS) SetAlias(index int, alias string) error {
	return n.do(index, func(l *linkInfo) error { l.Alias = alias; return nil })
}

func (n *fakeNS) MoveTo(index int, dst netNamespace) error {
	d := dst.(*fakeNS)
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	n.w.moves++
	if n.w.failMove > 0 && n.w.moves == n.w.failMove {
		return fmt.Errorf("move link %d: injected failure", index)
	}
	if _, ok := n.w.ns[d.id]; !ok {
		return fmt.Errorf("namespace %d is gone", d.id)
	}
	src := n.w.ns[n.id]
	for i, l := range src {
		if l.Index != index {
			continue
		}
		if n.w.find(d.id, l.Name) != nil {
			return fmt.Errorf("move %s: %w", l.Name, unix.EEXIST)
		}
		n.w.ns[n.id] = append(src[:i:i], src[i+1:]...)
		n.w.nextIndex++
		l.Index = n.w.nextIndex
		l.Up = false
		n.w.ns[d.id] = append(n.w.ns[d.id], l)
		return nil
	}
	return fmt.Errorf("link %d not in namespace %d", index, n.id)
}

// fakeNodes maps node names to PIDs; a missing node is a stopped container.
type fakeNodes struct {
	mu   sync.Mutex
	pids map[string]int
}

func (f *fakeNodes) PID(_ context.Context, node string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pid, ok := f.pids[node]
	if !ok {
		return 0, fmt.Errorf("container %s: no such container", node)
	}
	return pid, nil
}

func (f *fakeNodes) remove(node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.pids, node)
}

// env is a unit-test setup: a simulated sysfs describing PFs, the fake
// kernel holding links with the same names, nodes, and a Manager.
type env struct {
	t      *testing.T
	sim    *sriovsim.Sim
	net    *fakeNet
	nodes  *fakeNodes
	m      *Manager
	opts   Options
	writes []string
	wmu    sync.Mutex
}

type envPF struct {
	name, pci string
	mac       string
	mtu       int
	up        bool
	total     int
}

func newEnv(t *testing.T, pfs []envPF, opts Options, simOpts sriovsim.Options, workers ...string) *env {
	t.Helper()
	var sp []sriovsim.PF
	for _, p := range pfs {
		sp = append(sp, sriovsim.PF{Name: p.name, PCI: p.pci, TotalVFs: p.total})
	}
	sim, err := sriovsim.New(t.TempDir(), sp, simOpts)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := sim.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	e := &env{t: t, sim: sim, net: newFakeNet(), nodes: &fakeNodes{pids: map[string]int{}}}
	e.net.add(0, linkInfo{Index: 1, Name: "lo", MTU: 65536, Up: true})
	e.net.add(0, linkInfo{Index: 2, Name: "eth0", MAC: "52:54:00:00:00:01", MTU: 1500, Up: true})
	for _, p := range pfs {
		e.net.add(0, linkInfo{Name: p.name, MAC: p.mac, MTU: p.mtu, Up: p.up})
	}
	for i, w := range workers {
		pid := 1000 + i
		e.net.addNode(pid)
		e.nodes.pids[w] = pid
	}
	if opts.Cluster == "" {
		opts.Cluster = "test"
	}
	opts.SysfsRoot = sim.Root
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	if opts.SysfsTimeout == 0 {
		opts.SysfsTimeout = 5 * time.Second
	}
	if opts.ReturnWait == 0 {
		opts.ReturnWait = 500 * time.Millisecond
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 2 * time.Second
	}
	e.opts = opts
	e.m = e.manager(opts)
	return e
}

func (e *env) manager(opts Options) *Manager {
	m, err := New(opts, &cmdrun.Fake{}, debugLog)
	if err != nil {
		e.t.Fatal(err)
	}
	m.net = e.net
	m.euid = func() int { return 0 }
	m.initialNetns = func() (bool, error) { return true, nil }
	m.uplinks = func() (map[int]bool, error) { return nil, nil } // the fake host has no routes
	m.sys.onWrite = func(p, v string) {
		e.wmu.Lock()
		defer e.wmu.Unlock()
		rel := strings.TrimPrefix(p, e.sim.Root+"/")
		e.writes = append(e.writes, rel+" <- "+strings.TrimSpace(v))
	}
	return m
}

func (e *env) takeWrites() []string {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	w := e.writes
	e.writes = nil
	return w
}

// fourPFs: deliberately not in PCI order by name.
var fourPFs = []envPF{
	{name: "ens1f1", pci: "0000:3b:00.1", mac: "aa:00:00:00:00:02", mtu: 1500, up: true, total: 8},
	{name: "ens1f0", pci: "0000:3b:00.0", mac: "aa:00:00:00:00:01", mtu: 9000, up: false, total: 8},
	{name: "ens1f10", pci: "0000:5e:00.0", mac: "aa:00:00:00:00:03", mtu: 1500, up: true, total: 8},
	{name: "ens2f0", pci: "0000:af:00.0", mac: "aa:00:00:00:00:04", mtu: 1400, up: true, total: 8},
}
