// Package e2e is the end-to-end suite of kubevirtci-go: it drives the tool
// as a user would, through `make` and environment variables, on a real
// docker engine with the node and registry images built from source, and
// checks what a user would see (the seed README's commands), what the host
// gets back (every PF with its name, MAC, MTU and state), and what is left
// behind (nothing).
//
// There is no SR-IOV hardware on CI machines: veth pairs stand in for PFs,
// and a fake sysfs written by package sriovsim (SRIOV_SYSFS_ROOT) describes
// them as SR-IOV PFs with VF files the tool writes; the simulator plays the
// kernel's part (VFs appear, drivers bind). Moving the links between network
// namespaces is done by the real kernel.
//
// The tests run only when asked: KUBEVIRTCI_E2E=1, as root, with a docker
// engine that answers (scripts/e2e.sh, that is `make e2e`, sets this up).
// Otherwise every test skips and says why. See the README's testing section.
//
// Scenarios (in this order):
//
//   - TestScenarioCustomKind: KIND_VERSION=0.11.1, KUBECTL_PATH and a
//     custom KIND_NODE_IMAGE; no cgroup left behind for the ones after it.
//   - TestPreloadKeepsDeletions: an image whose layers delete files,
//     preloaded into the node image as a cluster-up does with component
//     images, runs in a node as built, and one with an empty layer is
//     unpacked (TestScenarioKindSRIOV checks the same with kind-sriov's
//     node image).
//   - TestScenarioOne: one 3-node cluster with two PFs per worker and a
//     blacklisted PF: every check of a running cluster, cluster-sync, and
//     cluster-down.
//   - TestScenarioTwo: clusters sriov and sriov2 side by side, created at
//     the same moment (held at the SR-IOV lock, released together).
//   - TestScenarioThree: cluster-up interrupted (SIGINT, then SIGKILL of the
//     whole process group) after the NICs moved; cluster-down still returns
//     everything.
//   - TestScenarioFour: the README's main job (make sim-cluster-up, make
//     sim-cluster-down) with the defaults from a git clone, and a second
//     cluster from a second clone, switched by cd and KUBECONFIG.
//   - TestScenarioPodman: a cluster with CRI_BIN=podman.
//   - TestScenarioDefaultImages: the default (upstream) component images
//     pulled through a registry mirror, and the errors when they cannot be.
//   - TestScenarioInterrupts: cluster-up interrupted by SIGINT and SIGTERM
//     at step boundaries drawn at random (KUBEVIRTCI_E2E_INTERRUPT_SEED);
//     the host exactly as before right after, and after cluster-down.
//   - TestScenarioKindSRIOV (run last, with kind-sriov's images): the
//     kind-sriov provider, Kubernetes 1.36, end to end.
//   - TestFigures (only with KUBEVIRTCI_E2E_FIGURES set, see
//     scripts/figures.sh): timings against plain kind.
package e2e
