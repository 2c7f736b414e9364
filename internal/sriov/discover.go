package sriov

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// PF is an SR-IOV physical function found on the host.
type PF struct {
	Name     string // netdev name in the host namespace
	PCI      string // PCI address, e.g. 0000:3b:00.0
	Index    int    // interface index in the host namespace
	TotalVFs int
	NumVFs   int
	Driver   string // PF driver, "" when unbound
	MAC      string
	PermMAC  string
	MTU      int
	Up       bool
	Alias    string
	// ParentDev is the PCI address as netlink reports it ("" when the
	// netdev has no PCI parent, e.g. a veth described by a fake sysfs).
	ParentDev string
}

// Discover lists the SR-IOV PFs of the host: links of the host namespace
// (from netlink) for which <root>/class/net/<name>/device/sriov_totalvfs
// exists, ordered by PCI address.
func (m *Manager) Discover() ([]PF, error) {
	host, err := m.net.Host()
	if err != nil {
		return nil, err
	}
	defer host.Close()
	links, err := host.Links()
	if err != nil {
		return nil, err
	}
	return discover(m.sys, links)
}

func discover(sys sysfs, links []linkInfo) ([]PF, error) {
	var pfs []PF
	for _, l := range links {
		devDir := sys.netDevice(l.Name)
		if _, err := os.Stat(filepath.Join(devDir, "sriov_totalvfs")); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("link %s: %w", l.Name, err)
		}
		real, err := filepath.EvalSymlinks(devDir)
		if err != nil {
			return nil, fmt.Errorf("link %s: %w", l.Name, err)
		}
		pci := filepath.Base(real)
		total, err := sys.readInt(filepath.Join(devDir, "sriov_totalvfs"))
		if err != nil {
			return nil, fmt.Errorf("link %s: %w", l.Name, err)
		}
		num, err := sys.readInt(filepath.Join(devDir, "sriov_numvfs"))
		if err != nil {
			return nil, fmt.Errorf("link %s: %w", l.Name, err)
		}
		drv, err := linkBase(filepath.Join(devDir, "driver"))
		if err != nil {
			return nil, fmt.Errorf("link %s: driver: %w", l.Name, err)
		}
		pf := PF{
			Name: l.Name, PCI: pci, Index: l.Index, TotalVFs: total, NumVFs: num, Driver: drv,
			MAC: l.MAC, PermMAC: l.PermMAC, MTU: l.MTU, Up: l.Up, Alias: l.Alias,
		}
		if l.ParentBus == "pci" && l.ParentDev == pci {
			pf.ParentDev = l.ParentDev
		}
		pfs = append(pfs, pf)
	}
	sort.Slice(pfs, func(i, j int) bool { return pfs[i].PCI < pfs[j].PCI })
	return pfs, nil
}
