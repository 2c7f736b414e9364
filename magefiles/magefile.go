//go:build mage

// Mage targets of kubevirtci-go; settings are environment variables (see README.md).
package main

// The mage targets are a table of contents: each one runs a command of the
// kubevirtci tool (cmd/kubevirtci), which go builds (incrementally) into
// _out/bin first when a source is newer than it (internal/toolbuild). The logic lives in ordinary, tested packages; keeping
// client-go and kind out of this file keeps `mage -l` fast, and building the
// tool with go (not mage's own cache) means a changed package is never
// run stale.
//
// KUBEVIRT_PROVIDER picks the provider (default kind-1.22-sriov); every
// setting is an environment variable, see the README.

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/magefile/mage/mg"
	"github.com/magefile/mage/sh"

	"github.com/kubevirt/kubevirtci-go/internal/toolbuild"
)

// ClusterUp brings up the cluster of KUBEVIRT_PROVIDER (kind cluster, registry, SR-IOV NICs, components).
func ClusterUp() error { return tool("cluster-up") }

// ClusterDown deletes the cluster, gives every NIC back to the host and removes the cluster's files.
func ClusterDown() error { return tool("cluster-down") }

// Status shows what is running: nodes, registry, kubeconfig, SR-IOV PFs and VFs.
func Status() error { return tool("status") }

// Sync pushes locally built images into the cluster's registry and rolls them out.
func Sync() error { return tool("sync") }

// Image builds images from source into the local engine, for hosts that can reach no registry.
type Image mg.Namespace

// Node builds the kind node image (Kubernetes v1.22.2) from source.
func (Image) Node() error { return tool("image-node") }

// Registry builds the local registry image from source.
func (Image) Registry() error { return tool("image-registry") }

// Components builds the multus, sriov-cni and SR-IOV device plugin images from their source archives (KUBEVIRTCI_UPSTREAM_DIR).
func (Image) Components() error { return tool("image-components") }

// Test runs the unit tests (no root, no docker).
func Test() error { return sh.RunV("go", "test", "-short", "./...") }

func tool(command string) error {
	bin := filepath.Join("_out", "bin", "kubevirtci")
	// go build of the whole graph costs a second or more even when
	// nothing changed; file times tell in milliseconds whether it can have.
	stale, why, err := toolbuild.Stale(".", bin)
	if err != nil || stale {
		if mg.Verbose() {
			fmt.Fprintf(os.Stderr, "building %s: %s%v\n", bin, why, errOrEmpty(err))
		}
		if err := sh.RunV("go", "build", "-o", bin, "./cmd/kubevirtci"); err != nil {
			return err
		}
		// go build leaves an up-to-date binary as it is: mark it as
		// checked now, or the change that made it look stale would
		// make it look stale again next time.
		now := time.Now()
		if err := os.Chtimes(bin, now, now); err != nil {
			return err
		}
	}
	args := []string{command}
	if mg.Verbose() {
		args = append([]string{"-v"}, args...)
	}
	_, err = sh.Exec(nil, os.Stdout, os.Stderr, bin, args...)
	return err
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}
