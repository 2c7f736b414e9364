#!/usr/bin/env bash
# The end-to-end suite (`make e2e`, and CI): real kind clusters on a real
# docker engine, driven through `make` and environment variables as a user
# would. Run it as root from anywhere in a checkout; CI=true is fine.
#
#   1. scripts/host-setup.sh --podman: the docker engine (and the runtime
#      wrapper where the host needs it), and podman for TestScenarioPodman;
#   2. the node, registry and component images of both providers built
#      from source (`CRI_BIN=docker KUBEVIRT_PROVIDER=... scripts/mage.sh
#      image:node image:registry image:components`; each
#      skips when its image is up to date; the components' source archives
#      come from KUBEVIRTCI_UPSTREAM_DIR);
#   3. TestProof (internal/nodeimage), for each node image (Kubernetes 1.22
#      and 1.36): a plain kind cluster from it, with DNS, pod-to-pod traffic
#      across nodes, a privileged pod and the registry checked;
#   4. go test ./test/e2e/... with KUBEVIRTCI_E2E=1. A suite that cannot
#      run (no root, no docker engine) fails instead of skipping.
#
# No SR-IOV hardware is needed: veth pairs stand in for PFs and a simulated
# sysfs (SRIOV_SYSFS_ROOT) describes them. On a host without an IOMMU the
# suite creates /dev/vfio/vfio (c 10 196) for the run and removes it after.
#
# Environment:
#   E2E_RUN      only the tests matching this regular expression (go test -run)
#   E2E_TIMEOUT  go test's timeout (default 60m)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "e2e: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "run as root: the suite moves network links and drives docker"; exit 1; }

start=$(date +%s)
log "host set-up (docker, and podman for its scenario)"
scripts/host-setup.sh --podman

log "node, registry and component images of both providers (built from source, reused when up to date)"
# Into docker, which the suite drives: with podman set up too, the tool
# would otherwise pick podman (TestScenarioPodman copies what it needs).
CRI_BIN=docker KUBEVIRT_PROVIDER=kind-1.22-sriov scripts/mage.sh image:node image:registry image:components
CRI_BIN=docker KUBEVIRT_PROVIDER=kind-sriov scripts/mage.sh image:node image:components

log "proof of both node images and the registry image (TestProof: DNS, pod to pod across nodes, a push and a pull through the registry)"
for node in 1.22 1.36; do
	KUBEVIRTCI_PROOF_NODE=$node go test -count=1 -timeout 60m -run '^TestProof$' ./internal/nodeimage/
done

log "end-to-end tests"
args=(-count=1 -timeout "${E2E_TIMEOUT:-60m}" -v)
if [ -n "${E2E_RUN:-}" ]; then
	args+=(-run "$E2E_RUN")
fi
# The whole log is kept; on failure the failing tests' own lines are
# printed again at the end, where a reader of a long CI log looks first.
out=${TMPDIR:-/tmp}/kubevirtci-e2e.log
set +e
KUBEVIRTCI_E2E=1 go test "${args[@]}" ./test/e2e/... 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" != 0 ]; then
	log "what the failing tests said (without the tools' streamed output, except its failures; whole log: $out):"
	scripts/e2e-failures.awk "$out" >&2 || true
fi
log "finished in $(( $(date +%s) - start ))s (exit $rc)"
exit $rc
