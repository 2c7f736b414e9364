package sriov

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// LedgerVersion is the version of the ledger's format.
const LedgerVersion = 1

// PFState is how far a PF got. Return does not rely on it to know where the
// PF is; it is progress for people and for deciding what to undo.
type PFState string

const (
	// StatePlanned: recorded, maybe already carrying the alias marker, not moved yet.
	StatePlanned PFState = "planned"
	// StateMoved: in its node's network namespace and up.
	StateMoved PFState = "moved"
	// StateConfigured: its VFs exist and are bound to vfio-pci.
	StateConfigured PFState = "configured"
	// StateReturned: verified back in the host with its original settings.
	StateReturned PFState = "returned"
)

// Ledger is what a cluster holds, written before anything moves.
type Ledger struct {
	Version   int        `json:"version"`
	Cluster   string     `json:"cluster"`
	SysfsRoot string     `json:"sysfsRoot"`
	VFCount   int        `json:"vfCount"`
	Created   time.Time  `json:"created"`
	Updated   time.Time  `json:"updated"`
	PFs       []LedgerPF `json:"pfs"`
}

// LedgerPF is one PF: everything needed to find it and restore it.
type LedgerPF struct {
	PCI  string `json:"pci"`
	Node string `json:"node"`
	// Original state on the host.
	Name      string `json:"name"`
	MAC       string `json:"mac"`
	PermMAC   string `json:"permMac,omitempty"`
	MTU       int    `json:"mtu"`
	Up        bool   `json:"up"`
	Alias     string `json:"alias,omitempty"`
	Driver    string `json:"driver,omitempty"`
	TotalVFs  int    `json:"totalVFs"`
	NumVFs    int    `json:"numVFs"`
	Autoprobe string `json:"autoprobe,omitempty"` // sriov_drivers_autoprobe, "" when absent
	// ParentDev is the PCI address netlink reported as the parent device
	// ("" for devices without a PCI parent, like veths).
	ParentDev string `json:"parentDev,omitempty"`
	// Marker is the alias the PF carries while the cluster holds it.
	Marker string  `json:"marker"`
	State  PFState `json:"state"`
}

// LedgerPath is the ledger file of a cluster.
func LedgerPath(stateDir, cluster string) string {
	return filepath.Join(stateDir, cluster+".json")
}

// ReadLedger reads a cluster's ledger; it returns nil, nil when there is none.
func ReadLedger(stateDir, cluster string) (*Ledger, error) {
	return readLedgerFile(LedgerPath(stateDir, cluster))
}

func readLedgerFile(p string) (*Ledger, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read SR-IOV ledger: %w", err)
	}
	var l Ledger
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("SR-IOV ledger %s is not valid JSON: %w (if its PFs are all back on the host, remove the file)", p, err)
	}
	if l.Version != LedgerVersion {
		return nil, fmt.Errorf("SR-IOV ledger %s has version %d, this program reads version %d", p, l.Version, LedgerVersion)
	}
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf("SR-IOV ledger %s: %w; it was not written by this tool (or was edited): check its PFs by hand, then remove it", p, err)
	}
	return &l, nil
}

// pciAddressRE is a PCI address as sysfs names it: domain:bus:device.function.
var pciAddressRE = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// validate checks every value before it becomes part of a sysfs path, a
// sysfs write or a link name: a ledger is read back as root.
func (l *Ledger) validate() error {
	if !clusterNameRE.MatchString(l.Cluster) {
		return fmt.Errorf("cluster %q is not a cluster name", l.Cluster)
	}
	for i, p := range l.PFs {
		bad := func(field, v string) error { return fmt.Errorf("PF %d: %s %q is not valid", i, field, v) }
		switch {
		case !pciAddressRE.MatchString(p.PCI):
			return bad("PCI address", p.PCI)
		case p.ParentDev != "" && !pciAddressRE.MatchString(p.ParentDev):
			return bad("parent device", p.ParentDev)
		case !validLinkName(p.Name):
			return bad("name", p.Name)
		case p.Node == "" || strings.ContainsAny(p.Node, "/\x00") || len(p.Node) > 253:
			return bad("node", p.Node)
		case p.NumVFs < 0 || p.NumVFs > 65535 || (p.TotalVFs > 0 && p.NumVFs > p.TotalVFs):
			return bad("VF count", fmt.Sprint(p.NumVFs))
		case p.Autoprobe != "" && p.Autoprobe != "0" && p.Autoprobe != "1":
			return bad("sriov_drivers_autoprobe", p.Autoprobe)
		}
		switch p.State {
		case StatePlanned, StateMoved, StateConfigured, StateReturned:
		default:
			return bad("state", string(p.State))
		}
	}
	return nil
}

// validLinkName is a Linux interface name: 1 to 15 bytes, no '/', ':' or
// white space, not "." or "..".
func validLinkName(s string) bool {
	return len(s) > 0 && len(s) <= 15 && s != "." && s != ".." && !strings.ContainsAny(s, "/: \t\n\r\x00")
}

// writeLedger replaces the ledger atomically: a crash leaves either the old
// or the new content, never a torn file.
func writeLedger(stateDir string, l *Ledger) error {
	l.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	final := LedgerPath(stateDir, l.Cluster)
	tmp, err := os.CreateTemp(stateDir, "."+l.Cluster+".json.tmp-*")
	if err != nil {
		return fmt.Errorf("write SR-IOV ledger: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("write SR-IOV ledger %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync SR-IOV ledger %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write SR-IOV ledger %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("write SR-IOV ledger: %w", err)
	}
	ok = true
	return syncDir(stateDir)
}

func removeLedger(stateDir, cluster string) error {
	if err := os.Remove(LedgerPath(stateDir, cluster)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove SR-IOV ledger: %w", err)
	}
	return syncDir(stateDir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// heldPF is a PF some other cluster holds.
type heldPF struct {
	Cluster string
	Ledger  string
	PCI     string
	Name    string
}

// otherLedgers returns the PFs held by every cluster but the given one. A
// ledger that cannot be read is an error: what it holds is unknown.
func otherLedgers(stateDir, cluster string) ([]heldPF, error) {
	paths, err := filepath.Glob(filepath.Join(stateDir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var held []heldPF
	for _, p := range paths {
		base := filepath.Base(p)
		if strings.HasPrefix(base, ".") || strings.TrimSuffix(base, ".json") == cluster {
			continue
		}
		l, err := readLedgerFile(p)
		if err != nil {
			return nil, fmt.Errorf("cannot tell which PFs other clusters hold: %w", err)
		}
		if l == nil {
			continue // removed meanwhile
		}
		for _, pf := range l.PFs {
			if pf.State == StateReturned {
				continue
			}
			held = append(held, heldPF{Cluster: l.Cluster, Ledger: p, PCI: pf.PCI, Name: pf.Name})
		}
	}
	return held, nil
}
