// Package kindcluster creates and deletes kind clusters. The kind library
// compiled into this tool is the default; when KIND_VERSION asks for another
// release, that release's kind binary is used instead (one on the PATH that
// reports that version, or one built from the Go module proxy), and never
// silently another version.
package kindcluster

import (
	"context"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/kind/pkg/cluster"
	kindversion "sigs.k8s.io/kind/pkg/cmd/kind/version"
	kindlog "sigs.k8s.io/kind/pkg/log"

	"github.com/kubevirt/kubevirtci-go/internal/step"
)

// Kind is what the provider needs from kind.
type Kind interface {
	// Version is the kind release in use, without a leading "v".
	Version() string
	// Create creates the cluster from a rendered v1alpha4 config, writing
	// its kubeconfig to kubeconfigPath (and nowhere else).
	Create(ctx context.Context, name string, config []byte, kubeconfigPath string) error
	// Delete deletes the cluster's nodes; deleting a cluster that does not
	// exist succeeds.
	Delete(ctx context.Context, name, kubeconfigPath string) error
	// Exists reports whether a cluster with exactly this name exists.
	Exists(ctx context.Context, name string) (bool, error)
	// Nodes returns the names of the cluster's node containers.
	Nodes(ctx context.Context, name string) ([]string, error)
	// KubeConfig is the cluster's kubeconfig for the host (the API
	// server at its published port), read from the control-plane node.
	// It works while Create runs, once kubeadm has written the node's
	// admin.conf, and fails before.
	KubeConfig(ctx context.Context, name string) ([]byte, error)
}

// LibraryVersion is the version of the kind library compiled in, without "v".
func LibraryVersion() string {
	return strings.TrimPrefix(kindversion.Version(), "v")
}

// Library drives kind through its Go API.
type Library struct {
	p *cluster.Provider
}

// NewLibrary returns the compiled-in kind using the given engine ("docker" or
// "podman"), the same one the rest of the tool uses.
func NewLibrary(engine string, log *step.Logger) (*Library, error) {
	var opt cluster.ProviderOption
	switch engine {
	case "docker":
		opt = cluster.ProviderWithDocker()
	case "podman":
		opt = cluster.ProviderWithPodman()
	default:
		return nil, fmt.Errorf("kind supports the engines docker and podman, not %q", engine)
	}
	return &Library{p: cluster.NewProvider(opt, cluster.ProviderWithLogger(logger{log}))}, nil
}

// Version implements Kind.
func (l *Library) Version() string { return LibraryVersion() }

// Create implements Kind. The node image comes from the config. Nodes are
// kept when creation fails (as with `kind create --retain`) so that the
// failure can be inspected; cluster-down removes them.
func (l *Library) Create(ctx context.Context, name string, config []byte, kubeconfigPath string) error {
	return l.p.Create(name,
		cluster.CreateWithRawConfig(config),
		cluster.CreateWithRetain(true),
		cluster.CreateWithKubeconfigPath(kubeconfigPath),
		cluster.CreateWithWaitForReady(0),
		cluster.CreateWithDisplayUsage(false),
		cluster.CreateWithDisplaySalutation(false),
	)
}

// Delete implements Kind.
func (l *Library) Delete(ctx context.Context, name, kubeconfigPath string) error {
	return l.p.Delete(name, kubeconfigPath)
}

// Exists implements Kind. Cluster names are compared exactly.
func (l *Library) Exists(ctx context.Context, name string) (bool, error) {
	names, err := l.p.List()
	if err != nil {
		return false, err
	}
	for _, n := range names {
		if n == name {
			return true, nil
		}
	}
	return false, nil
}

// Nodes implements Kind.
func (l *Library) Nodes(ctx context.Context, name string) ([]string, error) {
	ns, err := l.p.ListNodes(name)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		out = append(out, n.String())
	}
	return out, nil
}

// KubeConfig implements Kind.
func (l *Library) KubeConfig(ctx context.Context, name string) ([]byte, error) {
	s, err := l.p.KubeConfig(name, false)
	return []byte(s), err
}

// logger adapts kind's logger to step lines: kind's status messages become
// detail lines (shown with -v), its warnings and errors are always shown.
type logger struct{ l *step.Logger }

func (g logger) Warn(m string)                    { g.l.Infof("   kind: warning: %s", m) }
func (g logger) Warnf(f string, a ...interface{}) { g.Warn(fmt.Sprintf(f, a...)) }
func (g logger) Error(m string)                   { g.l.Infof("   kind: error: %s", m) }
func (g logger) Errorf(f string, a ...interface{}) {
	g.Error(fmt.Sprintf(f, a...))
}
func (g logger) V(level kindlog.Level) kindlog.InfoLogger {
	return infoLogger{l: g.l, on: g.l != nil && g.l.Verbose && level <= 1}
}

type infoLogger struct {
	l  *step.Logger
	on bool
}

func (i infoLogger) Info(m string) {
	if i.on {
		i.l.Debugf("kind: %s", strings.TrimSpace(m))
	}
}
func (i infoLogger) Infof(f string, a ...interface{}) { i.Info(fmt.Sprintf(f, a...)) }
func (i infoLogger) Enabled() bool                    { return i.on }

// ensure the interfaces are met
var (
	_ Kind           = (*Library)(nil)
	_ kindlog.Logger = logger{}
)

// statFile is os.Stat, replaceable in tests.
var statFile = os.Stat
