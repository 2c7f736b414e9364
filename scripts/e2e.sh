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
#   E2E_DEADLINE when set (seconds since the epoch; .ci/run sets it from its
#                time budget), the time by which the suite must end. Two
#                Kubernetes builds from source and both providers' tests do
#                not fit one CI run on 2 cores, so: when kind-1.22-sriov's
#                images had to be built in this run (they took longer than
#                E2E_COLD_SECONDS, default 600), kind-sriov's node image and
#                its two tests (TestProof 1.36, TestScenarioKindSRIOV) are
#                left to the next run; and when kind-sriov's images are not
#                built in time for those tests (about 8 minutes) to end by
#                the deadline, they are dropped and the build stopped (the
#                Go build cache keeps what was compiled). Either is said
#                with DROPPED, at the time and again at the end. The next
#                run finds the images built and runs every test.
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
imagesStart=$(date +%s)
CRI_BIN=docker KUBEVIRT_PROVIDER=kind-1.22-sriov scripts/mage.sh image:node image:registry image:components
imagesTook=$(( $(date +%s) - imagesStart ))
dropped=""

# With a deadline (CI), a run that had to build kind-1.22-sriov's node
# image (its images took more than E2E_COLD_SECONDS, default 600: a machine
# that had none) leaves kind-sriov's node image and its two tests to the
# next run. On 2 cores, the second Kubernetes build in the background slows
# kind-1.22-sriov's tests by a third and still does not end in time; the
# next run finds kind-1.22-sriov's images and has the time for it.
bgTargets="image:components image:node"
if [ -n "${E2E_DEADLINE:-}" ] && [ -z "${E2E_RUN:-}" ] && [ "$imagesTook" -gt "${E2E_COLD_SECONDS:-600}" ]; then
	bgTargets="image:components"
	dropped="kind-1.22-sriov's images had to be built in this run (${imagesTook}s, over E2E_COLD_SECONDS=${E2E_COLD_SECONDS:-600}): kind-sriov's node image, TestProof 1.36 and TestScenarioKindSRIOV are left to the next run, which finds those images built. Two Kubernetes builds and both providers' tests do not fit one CI run on 2 cores."
	log "DROPPED: $dropped"
fi

# kind-sriov's images (a Kubernetes 1.36 node, its components) are built in
# the background, at the lowest CPU priority, while kind-1.22-sriov's tests
# run: those spend much of their time waiting on clusters, and on a machine
# that has none of the images the build is about 20 minutes of CPU. When
# the images are up to date it ends in seconds.
bglog=${TMPDIR:-/tmp}/kubevirtci-e2e-images-kind-sriov.log
bgstart=$(date +%s)
# The component images come first: the VM suite (make e2e-sriov-vm) runs
# their binaries even in a run that has no time left for kind-sriov's node.
setsid nice -n 19 sh -c 'env CRI_BIN=docker KUBEVIRT_PROVIDER=kind-sriov scripts/mage.sh $2 && echo "e2e: kind-sriov images built in $(( $(date +%s) - $1 ))s"' sh "$bgstart" "$bgTargets" >"$bglog" 2>&1 &
bg=$!
trap 'kill -- -$bg 2>/dev/null || true' EXIT
log "kind-sriov's images ($bgTargets): building in the background (log: $bglog)"

proof() {
	log "proof of the Kubernetes $1 node image (TestProof: DNS, pod to pod across nodes, a privileged pod, a push and a pull through the registry)"
	KUBEVIRTCI_PROOF_NODE=$1 go test -count=1 -timeout 60m -run '^TestProof$' ./internal/nodeimage/
}

# kind-sriov's tests, TestProof 1.36 and TestScenarioKindSRIOV, take about
# 5 to 7 minutes on 2 cores.
secondNeeds=480

# waitImages waits for kind-sriov's images; with E2E_DEADLINE, only as long
# as its tests can still end in time. It returns 1 when its tests are
# dropped (then, or before).
waitImages() {
	local waitstart timer left which="" st=0
	waitstart=$(date +%s)
	if [ -n "${E2E_DEADLINE:-}" ]; then
		left=$(( E2E_DEADLINE - secondNeeds - waitstart ))
		if [ "$left" -lt 0 ]; then left=0; fi
		sleep "$left" &
		timer=$!
		wait -n -p which "$bg" "$timer" || st=$?
		if [ "$which" != "$bg" ]; then
			kill -- -"$bg" 2>/dev/null || true
			wait "$bg" 2>/dev/null || true
			trap - EXIT
			dropped="kind-sriov's images were not built in time (E2E_DEADLINE left ${left}s to wait for them; the build ran $(( $(date +%s) - bgstart ))s): TestProof 1.36 and TestScenarioKindSRIOV did not run. The Go build cache keeps what was compiled: the next run builds the rest and runs them."
			log "DROPPED: $dropped"
			log "the end of the build's log ($bglog):"
			tail -n 5 "$bglog" >&2
			return 1
		fi
		kill "$timer" 2>/dev/null || true
	else
		wait "$bg" || st=$?
	fi
	if [ "$st" != 0 ]; then
		log "building kind-sriov's images failed; the end of its log ($bglog):"
		tail -n 60 "$bglog" >&2
		exit 1
	fi
	trap - EXIT
	log "kind-sriov's images ($bgTargets) ready ($(tail -n 1 "$bglog" | sed 's/^e2e: //'); waited for $(( $(date +%s) - waitstart ))s)"
	[ -z "$dropped" ]
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
	E2E_DEADLINE="" waitImages
	proof 1.22
	proof 1.36
	log "end-to-end tests matching $E2E_RUN"
	suite -run "$E2E_RUN"
else
	proof 1.22
	log "end-to-end tests of kind-1.22-sriov (and the suite's own)"
	suite -skip "$second"
	if waitImages; then
		proof 1.36
		log "end-to-end tests of kind-sriov"
		suite -run "$second"
	fi
fi
if [ "$rc" != 0 ]; then
	log "what the failing tests said (without the tools' streamed output, except its failures; whole log: $out):"
	scripts/e2e-failures.awk "$out" >&2 || true
fi
if [ -n "$dropped" ]; then
	log "DROPPED from this run: $dropped"
fi
log "finished in $(( $(date +%s) - start ))s (exit $rc)"
exit $rc
