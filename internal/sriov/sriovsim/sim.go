// Package sriovsim simulates the sysfs side of SR-IOV hardware, for tests
// and for trying the provider on a machine without SR-IOV NICs.
//
// New writes a fake sysfs tree under a directory (used as SRIOV_SYSFS_ROOT)
// that describes existing network links (for example veth pairs) as SR-IOV
// physical functions, laid out as the kernel lays out /sys:
//
//	class/net/<name> -> ../../devices/pci0000:00/<pf>/net/<name>
//	devices/pci0000:00/<pf>/{sriov_totalvfs,sriov_numvfs,sriov_drivers_autoprobe,driver,iommu_group,net/<name>/device}
//	devices/pci0000:00/<vf>/{physfn,driver_override,driver,iommu_group}   (created with the VFs)
//	bus/pci/devices/<addr> -> ../../../devices/pci0000:00/<addr>
//	bus/pci/drivers/{<pf driver>,<vf driver>,vfio-pci}/{bind,unbind,<bound addr>}
//	kernel/iommu_groups/<n>/devices/<addr>
//
// A plain file cannot react to a write, so the simulator plays the kernel:
// Sync applies what was written (VF creation and removal on sriov_numvfs,
// bind and unbind), and Run calls Sync whenever a watched file is written
// (inotify). Writes the kernel would refuse (a non-zero VF count over a
// non-zero count, more VFs than sriov_totalvfs, binding a device whose
// driver_override names another driver) are undone and recorded in Errors:
// the writer sees no effect, as it would see an error from the kernel.
//
// Only sysfs is simulated. Moving the links between network namespaces is
// done by the real kernel on the real links; the tree does not follow
// renames of the links.
package sriovsim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for PF fields left zero.
const (
	DefaultTotalVFs = 8
	DefaultDriver   = "simnic"
	DefaultVFDriver = "simvf"
	MaxVFs          = 32
	vfioDriver      = "vfio-pci"
)

// PF describes one simulated physical function.
type PF struct {
	Name     string // the network link it describes (should exist in the host namespace)
	PCI      string // PCI address; default 0000:<81+i>:00.0
	TotalVFs int    // sriov_totalvfs; default 8, at most 32
	NumVFs   int    // VFs present at start
	Driver   string // PF driver; default simnic
	// VFDriver is the driver new VFs bind to while sriov_drivers_autoprobe
	// is 1; default simvf.
	VFDriver string
	// NoAutoprobe leaves out sriov_drivers_autoprobe (older kernels).
	NoAutoprobe bool
}

// Options change the whole tree.
type Options struct {
	NoVFIO  bool // no bus/pci/drivers/vfio-pci, as if the module were not loaded
	NoIOMMU bool // no kernel/iommu_groups/*, as if the IOMMU were off
}

// Sim is a simulated sysfs tree.
type Sim struct {
	Root string

	mu      sync.Mutex
	pfs     []*pfState
	devs    map[string]*device
	drivers []string
	group   int
	errs    []error
}

type pfState struct {
	PF
	bus, fn int
	domain  string
	vfs     []string
}

type device struct {
	addr   string
	pf     *pfState // the PF itself, or the VF's PF
	vf     bool
	driver string
	group  int
}

const pciDir = "devices/pci0000:00"

// New creates the tree under root (which must be empty or absent).
func New(root string, pfs []PF, opts Options) (*Sim, error) {
	if len(pfs) == 0 {
		return nil, errors.New("sriovsim: no PF given")
	}
	if entries, err := os.ReadDir(root); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("sriovsim: %s is not empty", root)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	s := &Sim{Root: abs, devs: map[string]*device{}}
	names := map[string]bool{}
	for i, p := range pfs {
		if p.Name == "" || strings.ContainsAny(p.Name, "/ ") || names[p.Name] {
			return nil, fmt.Errorf("sriovsim: PF %d: name %q is empty, invalid or repeated", i, p.Name)
		}
		names[p.Name] = true
		if p.PCI == "" {
			p.PCI = fmt.Sprintf("0000:%02x:00.0", 0x81+i)
		}
		if p.TotalVFs == 0 {
			p.TotalVFs = DefaultTotalVFs
		}
		if p.TotalVFs < 0 || p.TotalVFs > MaxVFs || p.NumVFs < 0 || p.NumVFs > p.TotalVFs {
			return nil, fmt.Errorf("sriovsim: PF %s: TotalVFs %d must be 1..%d and NumVFs %d at most TotalVFs", p.Name, p.TotalVFs, MaxVFs, p.NumVFs)
		}
		if p.Driver == "" {
			p.Driver = DefaultDriver
		}
		if p.VFDriver == "" {
			p.VFDriver = DefaultVFDriver
		}
		ps := &pfState{PF: p}
		var slot int
		if _, err := fmt.Sscanf(p.PCI, "%4s:%02x:%02x.%d", &ps.domain, &ps.bus, &slot, &ps.fn); err != nil || ps.fn > 7 {
			return nil, fmt.Errorf("sriovsim: PF %s: PCI address %q is not like 0000:81:00.0", p.Name, p.PCI)
		}
		s.pfs = append(s.pfs, ps)
	}
	// Every address, PFs' and possible VFs', must be unique.
	seen := map[string]string{}
	for _, ps := range s.pfs {
		for i := -1; i < ps.TotalVFs; i++ {
			a := ps.PCI
			if i >= 0 {
				a = ps.vfAddr(i)
			}
			if o, dup := seen[a]; dup {
				return nil, fmt.Errorf("sriovsim: PCI address %s used by both %s and %s", a, o, ps.Name)
			}
			seen[a] = ps.Name
		}
	}
	if err := s.build(opts); err != nil {
		return nil, err
	}
	return s, nil
}

// vfAddr is VF i's address: on bus PF bus + 0x10, function numbers
// PF function*32 + i (unique for up to 8 PF functions of 32 VFs).
func (p *pfState) vfAddr(i int) string {
	devfn := p.fn*MaxVFs + i
	return fmt.Sprintf("%s:%02x:%02x.%d", p.domain, (p.bus+0x10)&0xff, devfn>>3, devfn&7)
}

func (s *Sim) p(parts ...string) string {
	return filepath.Join(append([]string{s.Root}, parts...)...)
}

// symlink makes link point to target with a relative path, as sysfs does.
func (s *Sim) symlink(target, link string) error {
	// Like sysfs, the target path ends with the target's own name (for
	// example ../../../0000:3b:00.0, never ../..).
	rel, err := filepath.Rel(filepath.Dir(link), filepath.Dir(target))
	if err != nil {
		return err
	}
	rel = filepath.Join(rel, filepath.Base(target))
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	return os.Symlink(rel, link)
}

func writeFile(p, content string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), 0o644)
}

func (s *Sim) build(opts Options) error {
	for _, d := range []string{"class/net", pciDir, "bus/pci/devices", "bus/pci/drivers", "kernel/iommu_groups"} {
		if err := os.MkdirAll(s.p(d), 0o755); err != nil {
			return err
		}
	}
	drivers := map[string]bool{}
	if !opts.NoVFIO {
		drivers[vfioDriver] = true
	}
	for _, ps := range s.pfs {
		drivers[ps.Driver] = true
		drivers[ps.VFDriver] = true
	}
	for d := range drivers {
		s.drivers = append(s.drivers, d)
		for _, f := range []string{"bind", "unbind"} {
			if err := writeFile(s.p("bus/pci/drivers", d, f), ""); err != nil {
				return err
			}
		}
	}
	sort.Strings(s.drivers)
	for _, ps := range s.pfs {
		if err := s.addDevice(ps.PCI, ps, false, !opts.NoIOMMU); err != nil {
			return err
		}
		dir := s.p(pciDir, ps.PCI)
		files := map[string]string{
			"sriov_totalvfs":  strconv.Itoa(ps.TotalVFs) + "\n",
			"sriov_numvfs":    "0\n",
			"vendor":          "0x8086\n",
			"device":          "0x1572\n",
			"sriov_vf_device": "154c\n",
		}
		if !ps.NoAutoprobe {
			files["sriov_drivers_autoprobe"] = "1\n"
		}
		for f, c := range files {
			if err := writeFile(filepath.Join(dir, f), c); err != nil {
				return err
			}
		}
		netDir := filepath.Join(dir, "net", ps.Name)
		if err := s.symlink(dir, filepath.Join(netDir, "device")); err != nil {
			return err
		}
		if err := s.symlink(netDir, s.p("class/net", ps.Name)); err != nil {
			return err
		}
		if err := s.bind(ps.PCI, ps.Driver); err != nil {
			return err
		}
		if ps.NumVFs > 0 {
			if err := s.createVFs(ps, ps.NumVFs); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, "sriov_numvfs"), []byte(strconv.Itoa(ps.NumVFs)+"\n"), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Sim) addDevice(addr string, pf *pfState, vf bool, iommu bool) error {
	dir := s.p(pciDir, addr)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := s.symlink(dir, s.p("bus/pci/devices", addr)); err != nil {
		return err
	}
	d := &device{addr: addr, pf: pf, vf: vf, group: -1}
	if iommu {
		d.group = s.group
		s.group++
		g := s.p("kernel/iommu_groups", strconv.Itoa(d.group))
		if err := s.symlink(dir, filepath.Join(g, "devices", addr)); err != nil {
			return err
		}
		if err := s.symlink(g, filepath.Join(dir, "iommu_group")); err != nil {
			return err
		}
	}
	s.devs[addr] = d
	return nil
}

func (s *Sim) removeDevice(addr string) error {
	d := s.devs[addr]
	if d == nil {
		return nil
	}
	if d.driver != "" {
		if err := s.unbind(addr); err != nil {
			return err
		}
	}
	if d.group >= 0 {
		if err := os.RemoveAll(s.p("kernel/iommu_groups", strconv.Itoa(d.group))); err != nil {
			return err
		}
	}
	if err := os.Remove(s.p("bus/pci/devices", addr)); err != nil {
		return err
	}
	delete(s.devs, addr)
	return os.RemoveAll(s.p(pciDir, addr))
}

func (s *Sim) bind(addr, drv string) error {
	dir := s.p(pciDir, addr)
	if err := s.symlink(s.p("bus/pci/drivers", drv), filepath.Join(dir, "driver")); err != nil {
		return err
	}
	if err := s.symlink(dir, s.p("bus/pci/drivers", drv, addr)); err != nil {
		return err
	}
	s.devs[addr].driver = drv
	return nil
}

func (s *Sim) unbind(addr string) error {
	d := s.devs[addr]
	if err := os.Remove(s.p("bus/pci/drivers", d.driver, addr)); err != nil {
		return err
	}
	if err := os.Remove(s.p(pciDir, addr, "driver")); err != nil {
		return err
	}
	d.driver = ""
	return nil
}

func (s *Sim) createVFs(ps *pfState, n int) error {
	pfDir := s.p(pciDir, ps.PCI)
	autoprobe := true
	if b, err := os.ReadFile(filepath.Join(pfDir, "sriov_drivers_autoprobe")); err == nil {
		autoprobe = strings.TrimSpace(string(b)) != "0"
	}
	iommu := s.devs[ps.PCI].group >= 0
	for i := range n {
		a := ps.vfAddr(i)
		if err := s.addDevice(a, ps, true, iommu); err != nil {
			return err
		}
		dir := s.p(pciDir, a)
		if err := s.symlink(pfDir, filepath.Join(dir, "physfn")); err != nil {
			return err
		}
		for f, c := range map[string]string{"driver_override": "(null)\n", "vendor": "0x8086\n", "device": "0x154c\n"} {
			if err := writeFile(filepath.Join(dir, f), c); err != nil {
				return err
			}
		}
		if autoprobe {
			if err := s.bind(a, ps.VFDriver); err != nil {
				return err
			}
		}
		// The virtfn link last: a reader that sees it sees a complete VF.
		if err := s.symlink(dir, filepath.Join(pfDir, "virtfn"+strconv.Itoa(i))); err != nil {
			return err
		}
		ps.vfs = append(ps.vfs, a)
	}
	return nil
}

func (s *Sim) removeVFs(ps *pfState) error {
	pfDir := s.p(pciDir, ps.PCI)
	// Last VF first, each device before its virtfn link, so that a reader
	// that sees virtfn0 gone sees every VF gone (the kernel's write returns
	// only then; here the writer can only watch).
	for i := len(ps.vfs) - 1; i >= 0; i-- {
		if err := s.removeDevice(ps.vfs[i]); err != nil {
			return err
		}
		if err := os.Remove(filepath.Join(pfDir, "virtfn"+strconv.Itoa(i))); err != nil {
			return err
		}
	}
	ps.vfs = nil
	return nil
}

func (s *Sim) refuse(format string, args ...any) {
	s.errs = append(s.errs, fmt.Errorf(format, args...))
}

// Sync applies every pending write, as the kernel would have on write.
func (s *Sim) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ps := range s.pfs {
		if err := s.syncNumVFs(ps); err != nil {
			return err
		}
	}
	for _, d := range s.drivers {
		for _, op := range []string{"unbind", "bind"} {
			if err := s.syncDriverFile(d, op); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Sim) syncNumVFs(ps *pfState) error {
	p := s.p(pciDir, ps.PCI, "sriov_numvfs")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return nil // between the writer's truncate and write
	}
	cur := len(ps.vfs)
	n, err := strconv.Atoi(v)
	revert := func() error { return os.WriteFile(p, []byte(strconv.Itoa(cur)+"\n"), 0o644) }
	switch {
	case err != nil || n < 0:
		s.refuse("%s: write %q: invalid argument", p, v)
		return revert()
	case n == cur:
		return nil
	case n > ps.TotalVFs:
		s.refuse("%s: write %d: invalid argument (sriov_totalvfs is %d)", p, n, ps.TotalVFs)
		return revert()
	case n > 0 && cur > 0:
		s.refuse("%s: write %d: device or resource busy (%d VFs exist; write 0 first)", p, n, cur)
		return revert()
	case n == 0:
		return s.removeVFs(ps)
	default:
		return s.createVFs(ps, n)
	}
}

func (s *Sim) syncDriverFile(drv, op string) error {
	p := s.p("bus/pci/drivers", drv, op)
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	addr := strings.TrimSpace(string(b))
	if addr == "" {
		return nil
	}
	if err := os.Truncate(p, 0); err != nil {
		return err
	}
	d := s.devs[addr]
	if d == nil {
		s.refuse("%s: write %q: no such device", p, addr)
		return nil
	}
	if op == "unbind" {
		if d.driver != drv {
			s.refuse("%s: write %q: no such device (bound to %q)", p, addr, d.driver)
			return nil
		}
		return s.unbind(addr)
	}
	if d.driver != "" {
		s.refuse("%s: write %q: device or resource busy (bound to %s)", p, addr, d.driver)
		return nil
	}
	if !s.matches(d, drv) {
		s.refuse("%s: write %q: no such device (driver %s does not match it)", p, addr, drv)
		return nil
	}
	return s.bind(addr, drv)
}

// matches is the kernel's driver match: driver_override if set, else the
// device's own driver.
func (s *Sim) matches(d *device, drv string) bool {
	if d.vf {
		b, _ := os.ReadFile(s.p(pciDir, d.addr, "driver_override"))
		if o := strings.TrimSpace(string(b)); o != "" && o != "(null)" {
			return o == drv
		}
		return drv == d.pf.VFDriver
	}
	return drv == d.pf.Driver
}

// Errors returns the writes the simulated kernel refused so far.
func (s *Sim) Errors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs...)
}

// PFs returns the PFs with defaults filled in (PCI addresses).
func (s *Sim) PFs() []PF {
	out := make([]PF, len(s.pfs))
	for i, p := range s.pfs {
		out[i] = p.PF
	}
	return out
}

// VFs returns the addresses of the VFs the PF named name has now.
func (s *Sim) VFs(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pfs {
		if p.Name == name {
			return append([]string(nil), p.vfs...)
		}
	}
	return nil
}

// watched are the files a write to which needs the kernel to act.
func (s *Sim) watched() []string {
	var w []string
	for _, ps := range s.pfs {
		w = append(w, s.p(pciDir, ps.PCI, "sriov_numvfs"))
	}
	for _, d := range s.drivers {
		w = append(w, s.p("bus/pci/drivers", d, "bind"), s.p("bus/pci/drivers", d, "unbind"))
	}
	return w
}

// Run plays the kernel until ctx ends: every time a watched file is closed
// after a write, it calls Sync. If inotify is unavailable it polls every
// 10ms instead.
func (s *Sim) Run(ctx context.Context) error {
	loop, err := s.watch()
	if err != nil {
		return err
	}
	return loop(ctx)
}

// Start starts playing the kernel in a goroutine; once it returns, every
// write is seen. stop ends it and returns the loop's error.
func (s *Sim) Start(ctx context.Context) (stop func() error, err error) {
	loop, err := s.watch()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- loop(ctx) }()
	return func() error {
		cancel()
		return <-done
	}, nil
}

func (s *Sim) pollLoop(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.Sync(); err != nil {
				return err
			}
		}
	}
}
