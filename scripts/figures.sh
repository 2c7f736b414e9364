#!/usr/bin/env bash
# Measures the figures of docs/figures.md, in one run on this machine, and
# rewrites that file: for each provider, a 3-node `make cluster-up` against
# plain kind (same node image), `make cluster-down` until every PF is back;
# and the image build times. Run it as root from anywhere in a checkout, on an otherwise idle
# machine; it creates and deletes real clusters (about 15 minutes on 2 CPUs).
#
# Environment:
#   FIGURES_ROUNDS            clusters of each kind to create (default 1; more gives medians)
#   FIGURES_SKIP_WARM_BUILD=1 do not rebuild the node image with warm caches
#   FIGURES_OUT               file to write (default docs/figures.md)
#   FIGURES_PROVIDERS         providers to measure, comma-separated (default kind-1.22-sriov,kind-sriov)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "figures: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "run as root: it moves network links and drives docker"; exit 1; }

scripts/host-setup.sh

# The clusters run on docker (the e2e harness pins it): the images are
# built into docker too, whichever engine the host would pick first.
export CRI_BIN=docker

log "node, registry and component images"
build_log=$(mktemp)
trap 'rm -f "$build_log"' EXIT
t0=$SECONDS
{
	KUBEVIRT_PROVIDER=kind-1.22-sriov scripts/mage.sh image:node image:registry image:components
	KUBEVIRT_PROVIDER=kind-sriov scripts/mage.sh image:node image:components
} 2>&1 | tee "$build_log"
export FIGURES_IMAGE_ENSURE_SECONDS=$((SECONDS - t0))
if [ "$(grep -Ec 'is up to date|are up to date' "$build_log" || true)" -ge 5 ]; then
	export FIGURES_IMAGE_ENSURE_KIND="every image up to date: the check only"
else
	export FIGURES_IMAGE_ENSURE_KIND="built what was missing or out of date, with the caches as found"
fi

if [ "${FIGURES_SKIP_WARM_BUILD:-}" != 1 ]; then
	log "rebuilding the node image with warm caches"
	t0=$SECONDS
	KUBEVIRTCI_IMAGE_FORCE=1 scripts/mage.sh image:node
	export FIGURES_NODE_WARM_SECONDS=$((SECONDS - t0))
fi

out=${FIGURES_OUT:-docs/figures.md}
mkdir -p "$(dirname "$out")"
KUBEVIRTCI_E2E=1 KUBEVIRTCI_E2E_FIGURES=$(realpath -m "$out") \
	go test -count=1 -timeout 90m -v -run '^TestFigures$' ./test/e2e/
log "wrote $out"
