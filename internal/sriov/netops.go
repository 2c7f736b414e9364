package sriov

import (
	"fmt"
	"strings"
)

// linkInfo is what this package needs to know about a network link.
type linkInfo struct {
	Index     int
	Name      string
	MAC       string
	PermMAC   string
	MTU       int
	Up        bool // administratively up
	Alias     string
	ParentDev string // IFLA_PARENT_DEV_NAME, e.g. a PCI address
	ParentBus string // IFLA_PARENT_DEV_BUS_NAME, e.g. "pci"
}

// netNamespace is one network namespace (the host's or a node's). Links
// are addressed by interface index, which is only valid in that namespace
// and until the link moves.
type netNamespace interface {
	Links() ([]linkInfo, error)
	SetUp(index int, up bool) error
	SetName(index int, name string) error
	SetMTU(index, mtu int) error
	SetMAC(index int, mac string) error
	SetAlias(index int, alias string) error
	// MoveTo moves the link into dst.
	MoveTo(index int, dst netNamespace) error
	// ID identifies the namespace (device and inode of its nsfs file).
	ID() string
	Close() error
}

// netOps opens namespaces. The real implementation uses netlink; unit tests
// use an in-memory fake.
type netOps interface {
	// Host is the namespace of this process.
	Host() (netNamespace, error)
	// Node is the network namespace of process pid (a node container's).
	Node(pid int) (netNamespace, error)
}

// marker is the alias a PF carries while a cluster holds it.
func marker(cluster, pci string) string { return "kubevirtci-sriov:" + cluster + ":" + pci }

// findPF finds the PF p among links (see the package documentation for the
// order of the criteria). ok is false when it is not there.
func findPF(links []linkInfo, p *LedgerPF) (l linkInfo, ok bool, err error) {
	return findPFBy(links, p, 4)
}

// findMarkedPF finds the PF by its PCI parent or its alias marker only: the
// identities that cannot belong to another link (a bond in the host keeps
// the MAC of a PF that left it). Used while the PF carries the marker.
func findMarkedPF(links []linkInfo, p *LedgerPF) (l linkInfo, ok bool, err error) {
	return findPFBy(links, p, 2)
}

func findPFBy(links []linkInfo, p *LedgerPF, ncriteria int) (l linkInfo, ok bool, err error) {
	criteria := []struct {
		what  string
		match func(linkInfo) bool
	}{
		{"PCI parent device " + p.PCI, func(l linkInfo) bool {
			return p.ParentDev != "" && l.ParentBus == "pci" && l.ParentDev == p.ParentDev
		}},
		{"alias " + p.Marker, func(l linkInfo) bool { return p.Marker != "" && l.Alias == p.Marker }},
		{"permanent MAC " + p.PermMAC, func(l linkInfo) bool {
			return p.PermMAC != "" && strings.EqualFold(l.PermMAC, p.PermMAC)
		}},
		{"MAC " + p.MAC, func(l linkInfo) bool {
			// A link with a PCI parent other than the PF's is another device.
			if l.ParentBus == "pci" && l.ParentDev != "" && l.ParentDev != p.PCI {
				return false
			}
			return p.MAC != "" && strings.EqualFold(l.MAC, p.MAC)
		}},
	}
	for i, c := range criteria[:ncriteria] {
		var found []linkInfo
		for _, l := range links {
			if c.match(l) {
				found = append(found, l)
			}
		}
		switch {
		case len(found) == 1:
			return found[0], true, nil
		case len(found) > 1 && i < 2:
			names := make([]string, len(found))
			for j, f := range found {
				names[j] = f.Name
			}
			return linkInfo{}, false, fmt.Errorf("PF %s (%s): %d links match %s: %s", p.Name, p.PCI, len(found), c.what, strings.Join(names, ", "))
		}
		// Several links sharing a MAC (bonds, macvlans) identify nothing: go on.
	}
	return linkInfo{}, false, nil
}

func linkByName(links []linkInfo, name string) (linkInfo, bool) {
	for _, l := range links {
		if l.Name == name {
			return l, true
		}
	}
	return linkInfo{}, false
}

// linkStack is how a link sits on others: its master (the bond or bridge it
// is a member of) and its parent (the lower device of a VLAN or macvlan).
type linkStack struct{ index, master, parent int }

// withLowerLinks adds to carrying (link indexes) every link below one of
// them: members of a carrying master, parents of a carrying link, down to
// the physical ports.
func withLowerLinks(carrying map[int]bool, links []linkStack) map[int]bool {
	for changed := true; changed; {
		changed = false
		for _, l := range links {
			if carrying[l.index] && l.parent > 0 && !carrying[l.parent] {
				carrying[l.parent], changed = true, true
			}
			if l.master > 0 && carrying[l.master] && !carrying[l.index] {
				carrying[l.index], changed = true, true
			}
		}
	}
	return carrying
}
