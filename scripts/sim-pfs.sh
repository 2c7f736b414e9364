#!/usr/bin/env bash
# Simulated SR-IOV PFs, for trying the kind-1.22-sriov provider on a host
# without SR-IOV NICs (and for the end-to-end tests).
#
#   sudo scripts/sim-pfs.sh up [COUNT]   # COUNT veth pairs sim<i>pf / sim<i>peer (default 4)
#   eval "$(sudo scripts/sim-pfs.sh env)"
#   make cluster-up ... ; make cluster-down
#   sudo scripts/sim-pfs.sh down
#
# The veth ends named sim<i>pf are real links of the host; cmd/sriov-sim
# writes a fake sysfs tree describing them as SR-IOV PFs (with VF files) and
# plays the kernel's part when the tool writes sriov_numvfs. The provider
# moves the veths into the worker nodes with the real kernel, exactly as it
# moves real PFs. Point SRIOV_SYSFS_ROOT at the tree (what `env` prints).
#
# /dev/vfio/vfio is created (char 10:196) when the host has none, so that the
# provider's node preparation finds it; `down` removes it again.
set -euo pipefail
cd "$(dirname "$0")/.."

state=${SIM_STATE_DIR:-/run/kubevirtci-sim}
root=$state/sysfs
prefix=${SIM_PREFIX:-sim}

need_root() { [ "$(id -u)" -eq 0 ] || { echo "sim-pfs.sh: run as root (it creates network links)" >&2; exit 1; }; }

up() {
    need_root
    local count=${1:-4}
    if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
        echo "sim-pfs.sh: already up (pid $(cat "$state/pid")); run down first" >&2
        exit 1
    fi
    mkdir -p "$state"
    local pfs=()
    for i in $(seq 0 $((count - 1))); do
        local pf=${prefix}${i}pf
        ip link show "$pf" >/dev/null 2>&1 || ip link add "$pf" type veth peer name "${prefix}${i}peer"
        ip link set "${prefix}${i}peer" up
        pfs+=("$pf")
    done
    if [ ! -e /dev/vfio/vfio ]; then
        [ -d /dev/vfio ] || touch "$state/made-vfio-dir"
        mkdir -p /dev/vfio
        mknod -m 0600 /dev/vfio/vfio c 10 196
        touch "$state/made-vfio"
    fi
    go build -o _out/bin/sriov-sim ./cmd/sriov-sim
    rm -rf "$root"
    # Its own session: not in the process group of the make that started
    # it, which a Ctrl-C (or a test harness) signals as a whole.
    setsid nohup _out/bin/sriov-sim -root "$root" -pfs "$(IFS=,; echo "${pfs[*]}")" -cleanup >"$state/sim.log" 2>&1 &
    echo $! >"$state/pid"
    for _ in $(seq 1 100); do
        grep -q '^ready' "$state/sim.log" 2>/dev/null && break
        kill -0 "$(cat "$state/pid")" 2>/dev/null || { cat "$state/sim.log" >&2; exit 1; }
        sleep 0.1
    done
    grep -q '^ready' "$state/sim.log" || { echo "sim-pfs.sh: simulator did not start" >&2; cat "$state/sim.log" >&2; exit 1; }
    echo "simulated PFs: ${pfs[*]}"
    env
}

env() {
    echo "export SRIOV_SYSFS_ROOT=$root"
}

down() {
    need_root
    if [ -f "$state/pid" ]; then
        kill "$(cat "$state/pid")" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$(cat "$state/pid")" 2>/dev/null || break; sleep 0.1; done
        rm -f "$state/pid"
    fi
    for l in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^${prefix}[0-9]+(pf|peer)$" || true); do
        ip link del "$l" 2>/dev/null || true
    done
    if [ -f "$state/made-vfio" ]; then
        rm -f /dev/vfio/vfio "$state/made-vfio"
    fi
    # The folder too, when up made it (and it is empty): no trace of the
    # simulation is left on the host.
    if [ -f "$state/made-vfio-dir" ]; then
        rmdir /dev/vfio 2>/dev/null || true
    fi
    rm -rf "$state"
}

case "${1:-}" in
up) shift; up "$@" ;;
env) env ;;
down) down ;;
*) echo "usage: $0 up [COUNT] | env | down" >&2; exit 2 ;;
esac
