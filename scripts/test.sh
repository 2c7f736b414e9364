#!/usr/bin/env bash
# The project's test command (`make test`, and what CI runs):
#   - go vet, and the unit tests (`go test -short ./...`: no root, no docker);
#   - as root, the integration tests as well: real network namespaces with
#     veth pairs standing in for SR-IOV PFs, an in-process registry.
# End-to-end tests on real kind clusters are `make e2e` (scripts/e2e.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './_out/*'))
if [ -n "$unformatted" ]; then
    echo "gofmt would change:" >&2
    echo "$unformatted" >&2
    exit 1
fi
go vet ./...
# The VM suite's guest tests (make e2e-sriov-vm runs them) carry a build tag.
go vet -tags sriovvm ./internal/sriov/
if [ "$(id -u)" -eq 0 ]; then
    echo "== unit and integration tests (root)"
    go test -count=1 -timeout 20m ./...
else
    echo "== unit tests (not root: the integration tests need root and are skipped)"
    go test -short -count=1 ./...
fi
