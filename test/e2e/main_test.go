package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kubevirt/kubevirtci-go/images"
)

// Settings of the suite itself (not of the tool).
const (
	// EnvE2E must be 1 for the suite to run.
	EnvE2E = "KUBEVIRTCI_E2E"
	// EnvFigures names the markdown file TestFigures writes; unset, it skips.
	EnvFigures = "KUBEVIRTCI_E2E_FIGURES"
	// Node and registry images built from source (`make images`). The
	// suite uses KIND_NODE_IMAGE and REGISTRY_IMAGE from the environment
	// when they are set, these otherwise.
	defaultRegistryImage = images.RegistryImage
)

// defaultNodeImage is the node image built from source for kind-1.22-sriov.
var defaultNodeImage = images.Node122.Image()

var (
	// skipReason is why the suite does not run here ("" when it runs).
	skipReason string
	// repoRoot is the checkout under test (where the Makefile is).
	repoRoot string
	// nodeImage and registryImage are the images every cluster uses.
	nodeImage, registryImage string
	// componentImages are multus, sriov-cni and the device plugin, built
	// from source (`make images`); MULTUS_IMAGE, SRIOV_CNI_IMAGE and
	// SRIOV_DEVICE_PLUGIN_IMAGE from the environment replace them.
	multusImage, sriovCNIImage, devicePluginImage string
)

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	repoRoot, err = findRepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	nodeImage = envOr("KIND_NODE_IMAGE", defaultNodeImage)
	registryImage = envOr("REGISTRY_IMAGE", defaultRegistryImage)
	multusImage = envOr("MULTUS_IMAGE", images.Components122.Multus.Image())
	sriovCNIImage = envOr("SRIOV_CNI_IMAGE", images.Components122.SRIOVCNI.Image())
	devicePluginImage = envOr("SRIOV_DEVICE_PLUGIN_IMAGE", images.Components122.SRIOVDevicePlugin.Image())
	skipReason = gate()
	if skipReason != "" && os.Getenv(EnvE2E) == "1" && !testing.Short() {
		// Asked for (make e2e sets it) but it cannot run: a failure, not a
		// skip, or a run without docker would pass without testing anything.
		fmt.Fprintf(os.Stderr, "e2e: %s=1 but the suite cannot run here: %s\n", EnvE2E, skipReason)
		os.Exit(1)
	}
	restore := func() {}
	if skipReason == "" {
		unlock, err := lockHost(50 * time.Minute)
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			os.Exit(1)
		}
		defer unlock() // os.Exit releases it too: the lock is an flock of this process
		did, err := recoverLeftovers()
		for _, d := range did {
			fmt.Fprintln(os.Stderr, "e2e:", d)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: cleaning up after an earlier run:", err)
			os.Exit(1)
		}
		restore, err = prepareHost()
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: preparing the host:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	restore()
	if code != 0 {
		os.Exit(code)
	}
}

// lockPath is the host-wide lock of the suite: runs use the same cluster
// names (sriov, sriov2) and registry ports, so two runs on one host (say CI
// and scripts/figures.sh) must not overlap.
var lockPath = filepath.Join(os.TempDir(), "kubevirtci-e2e.lock")

// lockHost takes the suite's host-wide lock, waiting (bounded) while
// another run holds it.
func lockHost(wait time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for said := false; ; {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", lockPath, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("another end-to-end run still holds %s after %s", lockPath, wait)
		}
		if !said {
			holder, _ := os.ReadFile(lockPath)
			fmt.Fprintf(os.Stderr, "e2e: another end-to-end run holds %s (%s); waiting for it\n", lockPath, strings.TrimSpace(string(holder)))
			said = true
		}
		time.Sleep(2 * time.Second)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d\n", os.Getpid())), 0)
	return func() { f.Close() }, nil
}

// requireE2E skips the test unless the suite runs here, and fails it when
// the images it needs are missing.
func requireE2E(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	for _, img := range []string{nodeImage, registryImage, multusImage, sriovCNIImage, devicePluginImage} {
		if _, err := docker(context.Background(), "image", "inspect", "--format", "{{.Id}}", img); err != nil {
			t.Fatalf("image %s is not in the docker engine; build the images from source with `make images` (scripts/e2e.sh does), or set KIND_NODE_IMAGE, REGISTRY_IMAGE, MULTUS_IMAGE, SRIOV_CNI_IMAGE, SRIOV_DEVICE_PLUGIN_IMAGE: %v", img, err)
		}
	}
}

// gate says why the suite cannot run here, or "" when it can.
func gate() string {
	if testing.Short() {
		return "end-to-end suite: skipped with -short"
	}
	if os.Getenv(EnvE2E) != "1" {
		return "end-to-end suite: set " + EnvE2E + "=1 to run it (make e2e does); it creates kind clusters and moves network links of this host"
	}
	if os.Geteuid() != 0 {
		return "end-to-end suite: needs root (it creates veth pairs and moves them into node containers)"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return fmt.Sprintf("end-to-end suite: no docker engine answers `docker info` (%v: %s); run scripts/host-setup.sh", err, strings.TrimSpace(string(out)))
	}
	return ""
}

// prepareHost makes sure /dev/vfio/vfio exists on the host: kind mounts the
// host's /dev/vfio/ into the workers, and the provider sets the device's
// mode in them. A host without an IOMMU has no such device, so the suite
// creates the VFIO container device node (character 10:196) and removes
// what it created when it ends.
// suiteVFIO is what prepareHost created: /dev/vfio and /dev/vfio/vfio, or
// only the device, or nothing.
var suiteVFIO []string

func prepareHost() (restore func(), err error) {
	const dir, dev = "/dev/vfio", "/dev/vfio/vfio"
	var created []string
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, err
		}
		created = append(created, dir)
	}
	if _, err := os.Stat(dev); errors.Is(err, os.ErrNotExist) {
		// Mode 0600, as udev creates it: the provider must open it up
		// (0666) in the SR-IOV nodes, and a check sees that it did.
		if err := unix.Mknod(dev, unix.S_IFCHR|0o600, int(unix.Mkdev(10, 196))); err != nil {
			return nil, fmt.Errorf("mknod %s c 10 196: %w", dev, err)
		}
		created = append(created, dev)
		if err := os.Chmod(dev, 0o600); err != nil {
			return nil, err
		}
		// Should this run be killed, the next one removes the device.
		if err := os.MkdirAll(leftoversDir, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(vfioMarker, nil, 0o644); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "e2e: created %s (c 10 196); it is removed at the end\n", dev)
	}
	suiteVFIO = created
	return func() {
		for i := len(created) - 1; i >= 0; i-- {
			if err := os.Remove(created[i]); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: removing %s: %v\n", created[i], err)
			}
		}
		_ = os.Remove(vfioMarker)
	}, nil
}

func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "Makefile")); err == nil {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod with a Makefile above %s", dir)
		}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
