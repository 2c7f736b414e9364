// Package providers is the registry of cluster providers. Each provider
// lives in its own folder under providers/ and registers itself from an
// init function; providers/all imports every one of them. Adding a provider
// is adding a folder (and its import line in providers/all). A provider
// folder holds a description (package internal/kindsriov's Spec for the
// SR-IOV kind providers), not code of its own.
package providers

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/step"
)

// Provider is one kind of cluster the tool can bring up.
type Provider interface {
	// Up creates the cluster and everything it needs. A failure part-way
	// leaves a state that Down cleans up completely.
	Up(ctx context.Context) error
	// Down deletes the cluster and everything Up created. It succeeds
	// when there is nothing to delete and can be run again after a failure.
	Down(ctx context.Context) error
	// Status writes what is running and how to reach it.
	Status(ctx context.Context, w io.Writer) error
	// Sync pushes locally built images into the cluster and rolls them out.
	Sync(ctx context.Context) error
}

// Env is what a provider is built from.
type Env struct {
	Config *config.Config
	Log    *step.Logger
	Runner cmdrun.Runner
	// Getenv reads settings specific to a provider.
	Getenv func(string) string
}

// Factory builds a provider.
type Factory func(env Env) (Provider, error)

// Description is what the tool knows of a provider before it builds one:
// its name, the defaults of its settings and the versions of the images
// `make images` builds for it.
type Description struct {
	// Name is the value of KUBEVIRT_PROVIDER that selects it.
	Name string
	// Kubernetes is the version its default node image runs.
	Kubernetes string
	// Defaults are its settings' defaults (node and component images).
	Defaults config.Defaults
	// Images are the versions of the images built from source for it.
	Images images.Versions
	// New builds it from the validated settings.
	New Factory
}

var (
	mu       sync.Mutex
	registry = map[string]Description{}
)

// Register adds a provider. It panics on an empty or duplicate name or a
// missing factory, which are programming errors.
func Register(d Description) {
	mu.Lock()
	defer mu.Unlock()
	if d.Name == "" || d.New == nil {
		panic("provider registered without a name or a factory")
	}
	if _, dup := registry[d.Name]; dup {
		panic("provider registered twice: " + d.Name)
	}
	registry[d.Name] = d
}

// Lookup returns the provider called name; an unknown name fails with the
// list of known ones.
func Lookup(name string) (Description, error) {
	mu.Lock()
	d, ok := registry[name]
	mu.Unlock()
	if !ok {
		return Description{}, fmt.Errorf("unknown provider; known providers: %s", strings.Join(Names(), ", "))
	}
	return d, nil
}

// Defaults returns the defaults of the provider called name, for
// config.Load: its upstream images, or, fromSource, the images `make
// images` builds for it.
func Defaults(name string, fromSource bool) (config.Defaults, error) {
	d, err := Lookup(name)
	if err != nil || !fromSource {
		return d.Defaults, err
	}
	return d.SourceDefaults(), nil
}

// SourceDefaults are the names of the images `make images` builds for the
// provider, as setting defaults.
func (d Description) SourceDefaults() config.Defaults {
	src := config.Defaults{
		NodeImage:              d.Images.Node.Image(),
		MultusImage:            d.Images.Components.Multus.Image(),
		SRIOVCNIImage:          d.Images.Components.SRIOVCNI.Image(),
		SRIOVDevicePluginImage: d.Images.Components.SRIOVDevicePlugin.Image(),
		RegistryImage:          images.RegistryImage,
	}
	if d.Defaults.InjectorImage != "" {
		src.InjectorImage = d.Images.Components.Injector.Image()
	}
	return src
}

// Names lists the registered providers, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New builds the provider called name; an unknown name fails with the list
// of known ones.
func New(name string, env Env) (Provider, error) {
	d, err := Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", config.EnvProvider, name, err)
	}
	return d.New(env)
}
