// Package nodeimage builds, from Debian packages and Go modules only, the
// kind node images (one per images.Node: Kubernetes v1.22.2, v1.36.1) and
// the local registry image that the providers run, into the local docker or
// podman engine. No container registry is needed: every image the cluster
// runs is built here.
//
// The versions come from package images (images/versions.go). The build
// caches its work between runs under a cache directory: the debootstrap
// trees, the built binaries (one directory per component and input hash),
// and Go's own build and module caches. A final image carries the hash of its
// inputs in the label io.kubevirtci.inputs; when the engine already has the
// image with the same hash, nothing is rebuilt.
package nodeimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
	"github.com/kubevirt/kubevirtci-go/internal/step"
)

// InputsLabel is the image label that holds the hash of an image's inputs.
const InputsLabel = "io.kubevirtci.inputs"

// modulePath is this project's Go module; SourceDir defaults to the checkout
// that holds it.
const modulePath = "github.com/kubevirt/kubevirtci-go"

// Options configure a build.
type Options struct {
	// CRI is the container engine's command: "docker" or "podman" (or a
	// path to one of them).
	CRI string
	// Runner runs every external command (go, debootstrap, the engine, ...).
	Runner cmdrun.Runner
	// Log prints step lines; nil prints nothing.
	Log *step.Logger
	// SourceDir is this project's checkout (it holds images/ and
	// cmd/runc-capwrap). Empty: the directory holding go.mod of
	// module github.com/kubevirt/kubevirtci-go, searched upwards from the
	// working directory.
	SourceDir string
	// CacheDir keeps the build's work between runs. Empty: the environment's
	// KUBEVIRTCI_CACHE_DIR, else $XDG_CACHE_HOME/kubevirtci, else
	// ~/.cache/kubevirtci.
	CacheDir string
	// DebianMirror is debootstrap's mirror. Empty: the environment's
	// KUBEVIRTCI_DEBIAN_MIRROR, else images.DebianMirror.
	DebianMirror string
	// UpstreamDir holds the components' source archives (BuildComponents).
	// Empty: the environment's KUBEVIRTCI_UPSTREAM_DIR, else
	// DefaultUpstreamDir. A relative path is taken from SourceDir.
	UpstreamDir string
	// Components is the component set BuildComponents and
	// ComponentBinaries build. Zero: images.Components122.
	Components images.Components
	// Node is the node image BuildNode builds (its Kubernetes version and
	// the images kubeadm asks for). Zero: images.Node122.
	Node images.Node
	// Tag overrides the final image's name.
	Tag string
	// Force rebuilds the image even when the engine has one with the same inputs.
	Force bool
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

func (o *Options) getenv(k string) string {
	if o.Getenv != nil {
		return o.Getenv(k)
	}
	return os.Getenv(k)
}

// complete validates the options and fills in defaults.
func (o Options) complete() (Options, error) {
	switch filepath.Base(o.CRI) {
	case "docker", "podman":
	case ".":
		return o, errors.New(`container engine (Options.CRI) is empty: want "docker" or "podman"`)
	default:
		return o, fmt.Errorf("container engine (Options.CRI) %q is not supported: want \"docker\" or \"podman\"", o.CRI)
	}
	if o.Runner == nil {
		o.Runner = cmdrun.Exec{Log: io.Discard}
	}
	if o.SourceDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return o, err
		}
		dir, err := FindModuleRoot(wd)
		if err != nil {
			return o, err
		}
		o.SourceDir = dir
	}
	if _, err := os.Stat(filepath.Join(o.SourceDir, "images", "build")); err != nil {
		return o, fmt.Errorf("source directory (Options.SourceDir) %q does not hold images/build: want a checkout of %s", o.SourceDir, modulePath)
	}
	if o.CacheDir == "" {
		o.CacheDir = DefaultCacheDir(o.getenv)
	}
	if o.CacheDir == "" {
		return o, errors.New("no cache directory: set KUBEVIRTCI_CACHE_DIR, XDG_CACHE_HOME or HOME")
	}
	if o.DebianMirror == "" {
		o.DebianMirror = o.getenv("KUBEVIRTCI_DEBIAN_MIRROR")
	}
	if o.Node == (images.Node{}) {
		o.Node = images.Node122
	}
	return o, nil
}

// DefaultCacheDir, the build cache, is KUBEVIRTCI_CACHE_DIR, $XDG_CACHE_HOME/kubevirtci or ~/.cache/kubevirtci.
func DefaultCacheDir(getenv func(string) string) string {
	if d := getenv("KUBEVIRTCI_CACHE_DIR"); d != "" {
		return d
	}
	if d := getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "kubevirtci")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".cache", "kubevirtci")
	}
	return ""
}

// FindModuleRoot walks up from dir to the go.mod of this project's module
// (github.com/kubevirt/kubevirtci-go) and returns its directory.
func FindModuleRoot(dir string) (string, error) {
	start := dir
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), "module "+modulePath) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no checkout of %s found above %s: set Options.SourceDir", modulePath, start)
		}
		dir = parent
	}
}

// run runs a command through the options' runner.
func (o *Options) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return o.Runner.Run(ctx, nil, name, args...)
}

// cri runs the container engine.
func (o *Options) cri(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	return o.Runner.Run(ctx, stdin, o.CRI, args...)
}

// imageInputs returns the value of InputsLabel on image ref, or "" when the
// engine does not have the image.
func (o *Options) imageInputs(ctx context.Context, ref string) string {
	out, err := o.cri(ctx, nil, "image", "inspect", "--format", `{{ index .Config.Labels "`+InputsLabel+`" }}`, ref)
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(out))
	if s == "<no value>" {
		return ""
	}
	return s
}

// imageID returns the ID of image ref, or "" when the engine does not have it.
func (o *Options) imageID(ctx context.Context, ref string) string {
	out, err := o.cri(ctx, nil, "image", "inspect", "--format", "{{ .Id }}", ref)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// removeReplaced removes the image that ref named before a rebuild (old is
// its ID), so that rebuilds do not pile up untagged images. An image that a
// container still uses stays: the engine refuses, and that is fine.
func (o *Options) removeReplaced(ctx context.Context, old, ref string) {
	if old == "" || old == o.imageID(ctx, ref) {
		return
	}
	if _, err := o.cri(ctx, nil, "rmi", old); err != nil {
		o.Log.Debugf("keeping the replaced image %s: %v", old, err)
	}
}
