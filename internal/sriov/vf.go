package sriov

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ensureVFIO loads vfio-pci when <root>/bus/pci/drivers/vfio-pci is missing.
func (m *Manager) ensureVFIO(ctx context.Context) error {
	dir := m.sys.driverDir(VFDriver)
	if exists(dir) {
		return nil
	}
	m.debugf("loading kernel module %s", VFModule)
	if _, err := m.run.Run(ctx, nil, "modprobe", VFModule); err != nil {
		return fmt.Errorf("load the %s driver: %w", VFDriver, err)
	}
	return poll(ctx, m.opts.SysfsTimeout, dir+" to appear after loading "+VFModule, func() (bool, error) {
		return exists(dir), nil
	})
}

// virtfns returns the addresses of a PF's VFs, by VF index.
func (m *Manager) virtfns(pci string) ([]string, error) { return virtfns(m.sys, pci) }

// virtfns lists the VFs of the PF at pci, by index, in sys.
func virtfns(sys sysfs, pci string) ([]string, error) {
	dev := sys.pciDevice(pci)
	matches, err := filepath.Glob(filepath.Join(dev, "virtfn*"))
	if err != nil {
		return nil, err
	}
	type vf struct {
		i    int
		addr string
	}
	var vfs []vf
	for _, p := range matches {
		i, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "virtfn"))
		if err != nil {
			continue
		}
		addr, err := linkBase(p)
		if err != nil {
			return nil, err
		}
		if addr == "" {
			continue // removed meanwhile
		}
		vfs = append(vfs, vf{i, addr})
	}
	sort.Slice(vfs, func(a, b int) bool { return vfs[a].i < vfs[b].i })
	out := make([]string, len(vfs))
	for i, v := range vfs {
		out[i] = v.addr
	}
	return out, nil
}

// hasVirtfns reports whether exactly virtfn0..n-1 exist.
func (m *Manager) hasVirtfns(pci string, n int) (bool, error) {
	matches, err := filepath.Glob(filepath.Join(m.sys.pciDevice(pci), "virtfn*"))
	if err != nil {
		return false, err
	}
	if len(matches) != n {
		return false, nil
	}
	for i := range n {
		if !exists(filepath.Join(m.sys.pciDevice(pci), "virtfn"+strconv.Itoa(i))) {
			return false, nil
		}
	}
	return true, nil
}

// setNumVFs writes 0, waits for the VFs to go, then writes n (when n > 0)
// and waits for virtfn0..n-1. The kernel refuses to change a non-zero VF
// count to another non-zero count, hence the 0 first.
func (m *Manager) setNumVFs(ctx context.Context, pci string, n int, beforeCreate func() error) error {
	numvfs := filepath.Join(m.sys.pciDevice(pci), "sriov_numvfs")
	if err := m.sys.writeWithin(numvfs, "0", m.opts.SysfsTimeout); err != nil {
		return err
	}
	if err := poll(ctx, m.opts.SysfsTimeout, "the VFs of "+pci+" to go away", func() (bool, error) {
		return m.hasVirtfns(pci, 0)
	}); err != nil {
		return err
	}
	if beforeCreate != nil {
		if err := beforeCreate(); err != nil {
			return err
		}
	}
	if n == 0 {
		return nil
	}
	if err := m.sys.writeWithin(numvfs, strconv.Itoa(n), m.opts.SysfsTimeout); err != nil {
		return err
	}
	return poll(ctx, m.opts.SysfsTimeout, fmt.Sprintf("%d VFs (virtfn0..virtfn%d) on %s", n, n-1, pci), func() (bool, error) {
		return m.hasVirtfns(pci, n)
	})
}

// configureVFs creates opts.VFCount VFs on the PF and binds every one to
// vfio-pci. It returns the VF addresses.
func (m *Manager) configureVFs(ctx context.Context, p *LedgerPF) ([]string, error) {
	dev := m.sys.pciDevice(p.PCI)
	total, err := m.sys.readInt(filepath.Join(dev, "sriov_totalvfs"))
	if err != nil {
		return nil, err
	}
	if total < m.opts.VFCount {
		return nil, fmt.Errorf("PF %s (%s) supports %d VFs (sriov_totalvfs), VFS_COUNT=%d asks for more", p.Name, p.PCI, total, m.opts.VFCount)
	}
	// With autoprobe off, new VFs wait unbound instead of first binding to
	// their network driver on the host.
	autoprobe := filepath.Join(dev, "sriov_drivers_autoprobe")
	hasAutoprobe := exists(autoprobe)
	if hasAutoprobe {
		if err := m.sys.write(autoprobe, "0"); err != nil {
			return nil, err
		}
	}
	err = m.setNumVFs(ctx, p.PCI, m.opts.VFCount, nil)
	if hasAutoprobe && p.Autoprobe != "" {
		if rerr := m.sys.write(autoprobe, p.Autoprobe); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		return nil, err
	}
	vfs, err := m.virtfns(p.PCI)
	if err != nil {
		return nil, err
	}
	for _, vf := range vfs {
		if err := m.bindVF(ctx, vf); err != nil {
			return vfs, fmt.Errorf("VF %s of %s: %w", vf, p.Name, err)
		}
	}
	return vfs, nil
}

// bindVF binds one VF to vfio-pci: unbind from its driver, set
// driver_override, bind, clear driver_override.
func (m *Manager) bindVF(ctx context.Context, vf string) error {
	dir := m.sys.pciDevice(vf)
	drvLink := filepath.Join(dir, "driver")
	drv, err := linkBase(drvLink)
	if err != nil {
		return err
	}
	if drv == VFDriver {
		return nil
	}
	if drv != "" {
		if err := m.sys.write(filepath.Join(m.sys.driverDir(drv), "unbind"), vf); err != nil {
			return err
		}
		if err := poll(ctx, m.opts.SysfsTimeout, vf+" to unbind from "+drv, func() (bool, error) {
			d, err := linkBase(drvLink)
			return d == "", err
		}); err != nil {
			return err
		}
	}
	override := filepath.Join(dir, "driver_override")
	if err := m.sys.write(override, VFDriver); err != nil {
		return err
	}
	if err := m.sys.write(filepath.Join(m.sys.driverDir(VFDriver), "bind"), vf); err != nil {
		return err
	}
	if err := poll(ctx, m.opts.SysfsTimeout, vf+" to bind to "+VFDriver, func() (bool, error) {
		d, err := linkBase(drvLink)
		return d == VFDriver, err
	}); err != nil {
		return err
	}
	return m.sys.write(override, "\n")
}

// resetVFs puts back the PF's original VF count and autoprobe setting.
func (m *Manager) resetVFs(ctx context.Context, p *LedgerPF) error {
	dev := m.sys.pciDevice(p.PCI)
	if _, err := os.Stat(dev); err != nil {
		return fmt.Errorf("PCI device %s is not under %s: %w", p.PCI, m.sys.path("bus", "pci", "devices"), err)
	}
	// The current count only tells whether anything needs doing. One that
	// cannot be read (a write cut short by a kill, on a simulated sysfs
	// where writing truncates first) is no reason to keep the PF: writing 0
	// and then the original count restores it either way.
	cur, curErr := m.sys.readInt(filepath.Join(dev, "sriov_numvfs"))
	if curErr != nil {
		m.debugf("%s (%s): %v; restoring its VF count anyway", p.Name, p.PCI, curErr)
	}
	autoprobe := filepath.Join(dev, "sriov_drivers_autoprobe")
	restoreAutoprobe := func() error {
		if p.Autoprobe == "" || !exists(autoprobe) {
			return nil
		}
		if v, err := m.sys.readString(autoprobe); err == nil && v == p.Autoprobe {
			return nil
		}
		return m.sys.write(autoprobe, p.Autoprobe)
	}
	// Untouched unless the PF got past "planned" (VFs are only changed after
	// the ledger says "moved") or the count differs anyway.
	if p.State == StatePlanned && curErr == nil && cur == p.NumVFs {
		return restoreAutoprobe()
	}
	if err := m.setNumVFs(ctx, p.PCI, p.NumVFs, restoreAutoprobe); err != nil {
		return fmt.Errorf("restore %d VFs on %s (%s): %w", p.NumVFs, p.Name, p.PCI, err)
	}
	got, err := m.sys.readInt(filepath.Join(dev, "sriov_numvfs"))
	if err != nil {
		return err
	}
	if got != p.NumVFs {
		return fmt.Errorf("%s (%s): sriov_numvfs is %d after restoring %d", p.Name, p.PCI, got, p.NumVFs)
	}
	return nil
}
