// Package sriov lends SR-IOV physical functions (PFs) of the host to the
// worker nodes of a kind cluster, creates virtual functions (VFs) bound to
// vfio-pci on them, and gives every PF back, with its original name, MAC,
// MTU, up/down state and VF count, when the cluster goes away.
//
// # Flow
//
// Check discovers PFs and tells, without changing anything, whether a
// cluster can get the PFs it needs. Up takes a host-wide lock, allocates
// PFs, writes the cluster's ledger, moves each PF into its worker's network
// namespace, and creates and binds the VFs. Return gives back every PF in
// the ledger; ReturnNetdevs does its first half (the netdevs, not the VF
// counts), so that cluster-down can delete the nodes, and with them any VM
// holding a VF, before the VF counts are reset. PrepareNode readies a node for VFIO. Status reports what a
// cluster holds.
//
// # The ledger is the source of truth
//
// Before a single PF moves, Up writes <state dir>/<cluster>.json (atomically:
// temporary file, fsync, rename, fsync of the directory) with, per PF, what
// is needed to restore it: PCI address, name, MAC, MTU, up/down, alias, VF
// count, sriov_drivers_autoprobe, and the node it goes to. Every step updates
// the PF's state in the ledger after it is done. Return never trusts the
// state for where a PF is: a crash may fall between a move and the ledger
// update. It looks for every PF in the host namespace, then in its node's
// namespace, and if the node is gone it waits (bounded) for the kernel to
// hand the PF back. So Return is safe after an interrupt or a crash at any
// point of Up, and it can be run again until it succeeds: the ledger is
// removed only once every PF is verified back.
//
// The state directory is host-wide (not per checkout) because PFs are a
// host resource: clusters started from different checkouts share it. A flock
// on <state dir>/lock is held around allocation and moves (and around
// Return), and PFs recorded in the ledgers of other clusters are never
// candidates, so two clusters created at once never take the same PF.
//
// # Finding a PF again
//
// Names are not stable (the kernel renames a device it hands back when the
// name is taken; a node may rename it) and neither are interface indexes.
// A PF is found by, in this order:
//
//  1. its parent device from netlink (IFLA_PARENT_DEV_NAME, bus "pci"): the
//     PCI address itself, reported by the kernel in any namespace. Used only
//     when the PF had one at discovery, that is, for real NICs.
//  2. the link alias: on the way in, the alias is set to a marker holding the
//     cluster and the PCI address ("kubevirtci-sriov:<cluster>:<pci>"), as
//     the CNI host-device plugin does. The alias travels with the device
//     across namespaces. The original alias is kept in the ledger and put
//     back on return.
//  3. the permanent MAC address, then the current MAC address, each only if
//     exactly one link has it.
//
// Devices without a PCI parent (the veth pairs that tests use in place of
// PFs, described as PFs by a fake sysfs) are found by the alias marker.
// While moving in, only the first two count: a bond left in the host keeps
// the MAC of a PF that was its member, so a MAC cannot prove the PF left.
//
// # Nodes that stop
//
// Up keeps every node's namespace open while it works and, at the end,
// checks that each node's process still lives in that namespace. If a node
// stopped or restarted meanwhile, Up rolls back through the namespace it
// still holds (the open handle keeps it, and the PFs in it, alive). If a
// node is gone at Return, the PF is waited for: the kernel hands physical
// NICs of a destroyed namespace back to the initial namespace (renamed
// dev<N> if the name is taken). Virtual devices are destroyed instead;
// Return then names them as missing.
//
// # VFs are configured from the host, on the PCI device
//
// VF creation and driver binding run in this process, through
// <sysfs root>/bus/pci/devices/<PF address>, not inside the node as the old
// scripts did. Reasons:
//
//   - The PCI part of sysfs is global: it does not depend on the network
//     namespace the PF's netdev sits in, so it works the same before, during
//     and after the move (whereas /sys/class/net/<name> is namespaced).
//   - Modules are loaded into the host kernel: modprobe belongs on the host,
//     where the module files are, not in a node image.
//   - One code path, one error report, no dependency on tools in the node
//     image, and no need for a writable /sys in the node for this step.
//   - All of it goes through the sysfs root, so tests and the simulator use
//     a fake tree (SRIOV_SYSFS_ROOT) and exercise the exact same code.
//
// Before creating VFs, sriov_drivers_autoprobe is turned off (when the file
// exists) so that new VFs do not first bind to their default network driver
// on the host, then it is restored. Each VF is then unbound from any
// driver, given driver_override=vfio-pci, bound through
// drivers/vfio-pci/bind, and its override cleared. Every write is followed
// by a short bounded poll for its effect (immediate on a real kernel; the
// simulator applies writes asynchronously).
//
// # Namespaces
//
// Netlink work in a node's namespace uses a netlink socket created inside
// that namespace (netlink.NewHandleAt, which locks the OS thread, enters the
// namespace, opens the socket and restores the thread). Every later request
// on that socket acts in the node's namespace while the calling goroutine
// stays in the host namespace, so no thread can be left behind in a node's
// namespace and goroutines started meanwhile are not affected. Links are
// looked up again after every move because the index may change.
//
// "Host namespace" means the network namespace of this process. The kernel
// hands PFs of a dying namespace back to the initial namespace, so run this
// code in the initial network namespace (as root on the host, or in a
// container with host networking).
package sriov
