package sriov

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
)

// The label every SR-IOV worker gets (the caller sets it with client-go);
// the SR-IOV components select nodes by it.
const (
	NodeLabelKey   = "sriov_capable"
	NodeLabelValue = "true"
)

// VFIODevice is the VFIO container device VMs open; kind mounts the host's
// /dev/vfio/ into the workers.
const VFIODevice = "/dev/vfio/vfio"

// ErrNoVFIODevice is wrapped by PrepareNode's error when /dev/vfio/vfio is
// missing in the node.
var ErrNoVFIODevice = errors.New(VFIODevice + " is missing")

// NodeExec runs a command inside a node container (docker/podman exec).
type NodeExec interface {
	Exec(ctx context.Context, node string, args ...string) ([]byte, error)
}

// PrepareNode readies a worker for VFs: /sys remounted read-write (kind
// mounts it read-only; the SR-IOV device plugin and KubeVirt write there)
// and /dev/vfio/vfio made usable by everyone (mode 0666), both verified.
//
// When /dev/vfio/vfio does not exist in the node, PrepareNode fails with an
// error wrapping ErrNoVFIODevice rather than creating the device node: its
// absence means the host's /dev/vfio/ is not mounted into the node (the kind
// config's extra mount) or the vfio module is not loaded on the host, and
// then the per-group devices /dev/vfio/<group> that VMs need are missing
// too; a hand-made /dev/vfio/vfio would only move the failure to the first
// VM. Call it after Up, which loads vfio-pci. A simulated setup (fake
// SRIOV_SYSFS_ROOT on a host without VFIO) may choose to tolerate this error.
func PrepareNode(ctx context.Context, ex NodeExec, node string) error {
	// One command per node: each exec costs a container runtime round trip
	// (0.3 to 2 s on a loaded host), and cluster-up waits for the slowest node.
	out, err := ex.Exec(ctx, node, "sh", "-c", prepareScript)
	if err != nil {
		return fmt.Errorf("node %s: remount /sys read-write, make %s usable: %w", node, VFIODevice, err)
	}
	mode, mounts, _ := strings.Cut(string(out), "\n")
	if rw, found := sysfsWritable([]byte(mounts)); !found || !rw {
		return fmt.Errorf("node %s: /sys is still not mounted read-write after the remount", node)
	}
	switch mode = strings.TrimPrefix(mode, "vfio "); mode {
	case "666":
		return nil
	case "missing":
		return fmt.Errorf("node %s: %w (is the host's /dev/vfio/ mounted into the node by the kind config, and is the vfio-pci module loaded on the host?)", node, ErrNoVFIODevice)
	default:
		return fmt.Errorf("node %s: %s has mode %s after chmod 0666", node, VFIODevice, mode)
	}
}

// prepareScript is PrepareNode's work in a node. Its first line of output
// is "vfio <mode of /dev/vfio/vfio>" or "vfio missing", the rest the node's
// mounts after the remount.
const prepareScript = `set -e
mount -o remount,rw /sys
if [ -c ` + VFIODevice + ` ]; then
	chmod 0666 ` + VFIODevice + `
	echo "vfio $(stat -c %a ` + VFIODevice + `)"
else
	echo "vfio missing"
fi
cat /proc/self/mounts
`

// sysfsWritable finds the last mount on /sys in a mounts table and tells
// whether it is read-write.
func sysfsWritable(mounts []byte) (rw, found bool) {
	sc := bufio.NewScanner(bytes.NewReader(mounts))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[1] != "/sys" {
			continue
		}
		found = true
		rw = false
		for _, o := range strings.Split(f[3], ",") {
			if o == "rw" {
				rw = true
			}
		}
	}
	return rw, found
}
