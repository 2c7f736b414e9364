#!/usr/bin/env bash
# Runs the cluster's own kubectl (copied out of the control-plane node by
# cluster-up) against the cluster's kubeconfig. No kubectl is needed on the host.
#
#   cluster-up/kubectl.sh get nodes
#
# It reads the same settings as cluster-up: KUBEVIRT_PROVIDER,
# KUBEVIRTCI_CONFIG_PATH and CLUSTER_NAME.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
provider=${KUBEVIRT_PROVIDER:-kind-1.22-sriov}
cluster=${CLUSTER_NAME:-sriov}
if [ -n "${KUBEVIRTCI_CONFIG_PATH:-}" ]; then
    config_path=$KUBEVIRTCI_CONFIG_PATH
elif [ "$cluster" = sriov ]; then
    config_path=$root/_ci-configs
else
    config_path=$root/_ci-configs/$cluster
fi
file=$config_path/$provider/config-provider-$provider.sh
if [ ! -f "$file" ]; then
    echo "kubectl.sh: $file not found: no $provider cluster named $cluster is up (run make cluster-up)" >&2
    exit 1
fi
# shellcheck disable=SC1090
source "$file"
exec "$kubectl" --kubeconfig "$kubeconfig" "$@"
