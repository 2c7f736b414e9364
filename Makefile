# Every target delegates to mage, pinned in go.mod as a Go tool and run
# through scripts/mage.sh: nothing to install beforehand. Settings are
# environment variables; see README.md.
MAGE ?= scripts/mage.sh
V ?=
MAGEFLAGS = $(if $(V),-v,)

.PHONY: cluster-up cluster-down cluster-sync status images unit test e2e e2e-sriov-vm sim-cluster-up sim-cluster-down

cluster-up:
	$(MAGE) $(MAGEFLAGS) clusterUp

cluster-down:
	$(MAGE) $(MAGEFLAGS) clusterDown

cluster-sync:
	$(MAGE) $(MAGEFLAGS) sync

status:
	$(MAGE) $(MAGEFLAGS) status

# The node, registry and component images of KUBEVIRT_PROVIDER built from
# source (no container registry needed); the components from their source
# archives in KUBEVIRTCI_UPSTREAM_DIR (see README.md).
images:
	$(MAGE) $(MAGEFLAGS) image:node image:registry image:components

# Unit tests: no root, no docker.
unit:
	go test -short ./...

# The test command of the README and of CI: unit tests, then (as root)
# the integration tests on the real kernel.
test:
	./scripts/test.sh

e2e:
	./scripts/e2e.sh

# The provider's SR-IOV steps, the device plugin and sriov-cni on real SR-IOV
# drivers and emulated igb NICs in a QEMU VM (root; see scripts/e2e-sriov-vm.sh).
e2e-sriov-vm:
	./scripts/e2e-sriov-vm.sh

# The provider on simulated SR-IOV PFs (veth pairs described by a fake sysfs,
# see scripts/sim-pfs.sh) with every image built from source: for hosts
# with no SR-IOV NIC and no registry access. Run as root.
# KUBEVIRTCI_SOURCE_IMAGES=true makes the images `make images` built for
# KUBEVIRT_PROVIDER the defaults of KIND_NODE_IMAGE, REGISTRY_IMAGE and the
# component image settings (a setting given still wins). Every component
# wait runs but the allocatable one: the device plugin in a node reads the
# kernel's sysfs, where simulated PFs have no VF.
SIM_PFS ?= 4
SIM_ENV = SRIOV_SYSFS_ROOT=/run/kubevirtci-sim/sysfs \
	KUBEVIRTCI_SOURCE_IMAGES=$${KUBEVIRTCI_SOURCE_IMAGES:-true} \
	SRIOV_SKIP_ALLOCATABLE_WAIT=$${SRIOV_SKIP_ALLOCATABLE_WAIT:-true} \
	KUBEVIRT_NUM_NODES=$${KUBEVIRT_NUM_NODES:-3}

sim-cluster-up:
	scripts/host-setup.sh
	$(MAGE) $(MAGEFLAGS) image:node image:registry image:components
	scripts/sim-pfs.sh up $(SIM_PFS)
	$(SIM_ENV) $(MAGE) $(MAGEFLAGS) clusterUp

sim-cluster-down:
	$(SIM_ENV) $(MAGE) $(MAGEFLAGS) clusterDown
	scripts/sim-pfs.sh down
