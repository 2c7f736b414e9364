#!/usr/bin/env bash
# The SR-IOV VM suite (`make e2e-sriov-vm`, and CI): the provider's SR-IOV
# code, the device plugin and sriov-cni on real Linux SR-IOV drivers (igb,
# igbvf, vfio-pci) driving QEMU's emulated igb NICs, in a VM. Run as root
# from anywhere in a checkout.
#
#   1. scripts/vm-setup.sh: QEMU >= 8.0, busybox-static, pci.ids and a
#      Debian kernel (cached);
#   2. go test ./test/sriovvm with KUBEVIRTCI_SRIOV_VM=1: builds the guest's
#      programs (the device plugin and sriov-cni from the source archives in
#      KUBEVIRTCI_UPSTREAM_DIR), boots the VM and reports each guest case.
#
# Environment: SRIOV_VM_ACCEL=kvm|tcg skips the KVM detection.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "e2e-sriov-vm: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "run as root: it installs packages"; exit 1; }
start=$(date +%s)
kernel=$(bash scripts/vm-setup.sh | tail -n1)
log "VM inputs ready in $(( $(date +%s) - start ))s (kernel $kernel)"
set +e
KUBEVIRTCI_SRIOV_VM=1 SRIOV_VM_KERNEL_DIR="$kernel" go test -count=1 -timeout 20m -v ./test/sriovvm/
rc=$?
set -e
log "finished in $(( $(date +%s) - start ))s (exit $rc)"
exit $rc
