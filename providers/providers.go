// Package providers is the registry of cluster providers. Each provider
// lives in its own folder under providers/ and registers itself from an
// init function; providers/all imports every one of them. Adding a provider
// is adding a folder (and its import line in providers/all).
package providers

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

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

var (
	mu       sync.Mutex
	registry = map[string]Factory{}
)

// Register adds a provider under name. It panics on a duplicate name, which
// is a programming error.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic("provider registered twice: " + name)
	}
	registry[name] = f
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
	mu.Lock()
	f, ok := registry[name]
	mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%s=%q: unknown provider; known providers: %s", config.EnvProvider, name, strings.Join(Names(), ", "))
	}
	return f(env)
}
