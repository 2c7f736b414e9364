#!/usr/bin/env bash
# The end-to-end suite (`make e2e`, and CI): real kind clusters on a real
# docker engine, driven through `make` and environment variables as a user
# would. Run it as root from anywhere in a checkout; CI=true is fine.
#
#   1. scripts/host-setup.sh --podman: the docker engine (and the runtime
#      wrapper where the host needs it), and podman for TestScenarioPodman;
#   2. the node, registry and component images of kind-1.22-sriov built
#      from source (`CRI_BIN=docker KUBEVIRT_PROVIDER=... scripts/mage.sh
#      image:node image:registry image:components`; each skips when its
#      image is up to date; the components' source archives come from
#      KUBEVIRTCI_UPSTREAM_DIR), then kind-sriov's in the background, at
#      the lowest CPU priority, while step 3 and 4 run for kind-1.22-sriov;
#   3. TestProof (internal/nodeimage), for each node image (Kubernetes 1.22
#      and 1.36): a plain kind cluster from it, with DNS, pod-to-pod traffic
#      across nodes, a privileged pod and the registry checked;
#   4. go test ./test/e2e/... with KUBEVIRTCI_E2E=1: every test but
#      TestScenarioKindSRIOV, then (kind-sriov's images ready, its
#      TestProof passed) that one. A suite that cannot run (no root, no
#      docker engine) fails instead of skipping.
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

# Images go into docker, which the suite drives: with podman set up too,
# the tool would otherwise pick podman (TestScenarioPodman copies what it
# needs).
log "node, registry and component images of kind-1.22-sriov (built from source, reused when up to date)"
CRI_BIN=docker KUBEVIRT_PROVIDER=kind-1.22-sriov scripts/mage.sh image:node image:registry image:components

# kind-sriov's images (a Kubernetes 1.36 node, its components) are built in
# the background, at the lowest CPU priority, while kind-1.22-sriov's tests
# run: those spend much of their time waiting on clusters, and on a machine
# that has none of the images the build is about 20 minutes of CPU. When
# the images are up to date it ends in seconds.
bglog=${TMPDIR:-/tmp}/kubevirtci-e2e-images-kind-sriov.log
bgstart=$(date +%s)
setsid nice -n 19 sh -c 'env CRI_BIN=docker KUBEVIRT_PROVIDER=kind-sriov scripts/mage.sh image:node image:components && echo "e2e: kind-sriov images built in $(( $(date +%s) - $1 ))s"' sh "$bgstart" >"$bglog" 2>&1 &
bg=$!
trap 'kill -- -$bg 2>/dev/null || true' EXIT
log "kind-sriov's images: building in the background (log: $bglog)"

proof() {
	log "proof of the Kubernetes $1 node image (TestProof: DNS, pod to pod across nodes, a privileged pod, a push and a pull through the registry)"
	KUBEVIRTCI_PROOF_NODE=$1 go test -count=1 -timeout 60m -run '^TestProof$' ./internal/nodeimage/
}

waitImages() {
	local waitstart
	waitstart=$(date +%s)
	if ! wait "$bg"; then
		log "building kind-sriov's images failed; the end of its log ($bglog):"
		tail -n 60 "$bglog" >&2
		exit 1
	fi
	trap - EXIT
	log "kind-sriov's images ready ($(tail -n 1 "$bglog" | sed 's/^e2e: //'); waited for $(( $(date +%s) - waitstart ))s)"
}

args=(-count=1 -timeout "${E2E_TIMEOUT:-60m}" -v)
# The whole log is kept; on failure the failing tests' own lines are
# printed again at the end, where a reader of a long CI log looks first.
out=${TMPDIR:-/tmp}/kubevirtci-e2e.log
: >"$out"
rc=0
suite() {
	set +e
	KUBEVIRTCI_E2E=1 go test "${args[@]}" "$@" ./test/e2e/... 2>&1 | tee -a "$out"
	local r=${PIPESTATUS[0]}
	set -e
	[ "$r" = 0 ] || rc=$r
}

# The tests that need kind-sriov's images.
second='^TestScenarioKindSRIOV$'
if [ -n "${E2E_RUN:-}" ]; then
	waitImages
	proof 1.22
	proof 1.36
	log "end-to-end tests matching $E2E_RUN"
	suite -run "$E2E_RUN"
else
	proof 1.22
	log "end-to-end tests of kind-1.22-sriov (and the suite's own)"
	suite -skip "$second"
	waitImages
	proof 1.36
	log "end-to-end tests of kind-sriov"
	suite -run "$second"
fi
if [ "$rc" != 0 ]; then
	log "what the failing tests said (without the tools' streamed output, except its failures; whole log: $out):"
	scripts/e2e-failures.awk "$out" >&2 || true
fi
log "finished in $(( $(date +%s) - start ))s (exit $rc)"
exit $rc
