# Every target delegates to mage (pinned in go.mod as a Go tool: nothing to
# install beforehand). Settings are environment variables; see README.md.
MAGE ?= go tool mage
V ?=
MAGEFLAGS = $(if $(V),-v,)

.PHONY: cluster-up cluster-down cluster-sync status images test integration e2e

cluster-up:
	$(MAGE) $(MAGEFLAGS) clusterUp

cluster-down:
	$(MAGE) $(MAGEFLAGS) clusterDown

cluster-sync:
	$(MAGE) $(MAGEFLAGS) sync

status:
	$(MAGE) $(MAGEFLAGS) status

# Node and registry images built from source (no container registry needed).
images:
	$(MAGE) $(MAGEFLAGS) image:node image:registry

# Unit tests: no root, no docker.
unit:
	go test -short ./...

# The test command of the README and of CI: unit tests, then (as root)
# the integration tests on the real kernel.
test:
	./scripts/test.sh

e2e:
	./scripts/e2e.sh
