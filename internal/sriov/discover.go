package sriov

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
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
// exists, one per PCI function, ordered by PCI address.
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
	byPCI := map[string]int{}
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
		if other, dup := byPCI[pci]; dup {
			// Several netdevs on one PCI function: the ports of a
			// multi-port function, or switchdev representors. The
			// function is one PF; it is moved by one netdev.
			if !sys.preferredNetdev(l.Name, pfs[other].Name) {
				continue
			}
			pfs[other] = pf
			continue
		}
		byPCI[pci] = len(pfs)
		pfs = append(pfs, pf)
	}
	sort.Slice(pfs, func(i, j int) bool { return pfs[i].PCI < pfs[j].PCI })
	return pfs, nil
}

// representorRE matches the phys_port_name of a switchdev representor of a
// VF or SF (pf0vf1, c1pf0sf3): a port of the eswitch, not the PF's uplink.
var representorRE = regexp.MustCompile(`^(c\d+)?pf\d+(vf|sf)\d+$`)

// preferredNetdev tells whether netdev a stands for its PCI function
// rather than b: not a VF/SF representor, then the lower dev_port (the
// first port), then the name.
func (s sysfs) preferredNetdev(a, b string) bool {
	rank := func(n string) (bool, int) {
		port, _ := s.readString(s.path("class", "net", n, "phys_port_name"))
		dev, err := s.readInt(s.path("class", "net", n, "dev_port"))
		if err != nil {
			dev = 0
		}
		return representorRE.MatchString(port), dev
	}
	ra, da := rank(a)
	rb, db := rank(b)
	switch {
	case ra != rb:
		return !ra
	case da != db:
		return da < db
	}
	return a < b
}
