package sriov

import (
	"fmt"
	"regexp"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/config"
)

// Defaults for Options.
const (
	DefaultSysfsRoot      = "/sys"
	DefaultStateDir       = "/var/lib/kubevirtci/sriov"
	DefaultPFCountPerNode = 1
	DefaultVFCount        = config.DefaultVFsCount
	DefaultLockTimeout    = 5 * time.Minute
	DefaultSysfsTimeout   = 30 * time.Second
	DefaultReturnWait     = 2 * time.Minute
)

// VFDriver is the driver every VF is bound to; VFModule is the module that provides it.
const (
	VFDriver = "vfio-pci"
	VFModule = "vfio-pci"
)

// Options are the plain values this package needs. Parsing the settings
// (environment variables) is the caller's job.
type Options struct {
	// SysfsRoot is where sysfs is read and written (setting SRIOV_SYSFS_ROOT,
	// default /sys). Pointing it at a fake tree (see package sriovsim)
	// simulates SR-IOV hardware.
	SysfsRoot string
	// StateDir holds the host-wide lock and one ledger per cluster (setting
	// SRIOV_STATE_DIR, default /var/lib/kubevirtci/sriov).
	StateDir string
	// Cluster is the cluster name; its ledger is <StateDir>/<Cluster>.json.
	Cluster string
	// PFCountPerNode is how many PFs each worker gets (PF_COUNT_PER_NODE).
	PFCountPerNode int
	// VFCount is how many VFs are created on every PF (VFS_COUNT).
	VFCount int
	// Blacklist holds exact PF names never to take (PF_BLACKLIST).
	Blacklist []string
	// LockTimeout bounds the wait for the host-wide lock.
	LockTimeout time.Duration
	// SysfsTimeout bounds each wait for the kernel to act on a sysfs write
	// (VFs appearing, a driver binding, a module's driver showing up).
	SysfsTimeout time.Duration
	// ReturnWait bounds how long Return waits for the kernel to hand back a
	// PF whose node is gone.
	ReturnWait time.Duration
}

func (o Options) withDefaults() Options {
	if o.SysfsRoot == "" {
		o.SysfsRoot = DefaultSysfsRoot
	}
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.PFCountPerNode == 0 {
		o.PFCountPerNode = DefaultPFCountPerNode
	}
	if o.VFCount == 0 {
		o.VFCount = DefaultVFCount
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.SysfsTimeout == 0 {
		o.SysfsTimeout = DefaultSysfsTimeout
	}
	if o.ReturnWait == 0 {
		o.ReturnWait = DefaultReturnWait
	}
	return o
}

var clusterNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

func (o Options) validate() error {
	if !clusterNameRE.MatchString(o.Cluster) {
		return fmt.Errorf("cluster name %q is not usable for SR-IOV state: use letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. CLUSTER_NAME=sriov)", o.Cluster)
	}
	if o.PFCountPerNode < 1 {
		return fmt.Errorf("PF_COUNT_PER_NODE=%d: must be a positive integer (e.g. 1)", o.PFCountPerNode)
	}
	if o.VFCount < 1 {
		return fmt.Errorf("VFS_COUNT=%d: must be a positive integer (e.g. 6)", o.VFCount)
	}
	if o.LockTimeout < 0 || o.SysfsTimeout < 0 || o.ReturnWait < 0 {
		return fmt.Errorf("SR-IOV timeouts must not be negative (lock %s, sysfs %s, return %s)", o.LockTimeout, o.SysfsTimeout, o.ReturnWait)
	}
	return nil
}
