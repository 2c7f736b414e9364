// Package kindsriov is the shared core of the SR-IOV kind providers
// (kind-1.22-sriov, kind-sriov): a kind cluster, a local registry, and the
// host's SR-IOV PFs moved into its worker nodes, with multus, sriov-cni, the
// SR-IOV device plugin and, where the provider has it,
// network-resources-injector deployed. A provider is a Spec: its name, its
// defaults and the few things in which it differs.
//
// Every step of cluster-up, with its undo, is in one table (steps.go). A
// failed or interrupted Up undoes only what that run created; Down runs
// every step's undo, in reverse order, from what it observes on the host
// (ledger, containers, files), so it cleans up after a crash at any point.
package kindsriov

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubevirt/kubevirtci-go/internal/cgroupv1"
	"github.com/kubevirt/kubevirtci-go/internal/components"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/cri"
	"github.com/kubevirt/kubevirtci-go/internal/kindcluster"
	"github.com/kubevirt/kubevirtci-go/internal/kube"
	"github.com/kubevirt/kubevirtci-go/internal/kubeapply"
	"github.com/kubevirt/kubevirtci-go/internal/localregistry"
	"github.com/kubevirt/kubevirtci-go/internal/preload"
	"github.com/kubevirt/kubevirtci-go/internal/regproxy"
	"github.com/kubevirt/kubevirtci-go/internal/sriov"
	steplog "github.com/kubevirt/kubevirtci-go/internal/step"
	"github.com/kubevirt/kubevirtci-go/providers"
)

// Provider implements providers.Provider.
type Provider struct {
	spec Spec
	env  providers.Env
	cli  engine           // nil until setup
	bin  string           // the container CLI's path
	kind kindcluster.Kind // nil until setup
	deps deps
}

// New builds the provider that spec describes from the validated settings.
func New(spec Spec, env providers.Env) (*Provider, error) {
	p := &Provider{spec: spec, env: env}
	p.deps = realDeps(p)
	return p, nil
}

// engine is what the provider needs from the container CLI (cri.CLI).
type engine interface {
	Name() string
	localregistry.Engine
	sriov.Nodes
	sriov.NodeExec
	ExecInput(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error)
	CopyFrom(ctx context.Context, name, src, dst string) error
	ImageExists(ctx context.Context, ref string) (bool, error)
	// LocalImageID is the ID of a local image; false when there is none.
	LocalImageID(ctx context.Context, ref string) (string, bool, error)
	// FileInImage reports whether a path exists in a local image.
	FileInImage(ctx context.Context, image, path string) (bool, error)
	SaveImages(ctx context.Context, file string, refs ...string) error
	// What making the node image with preloaded component images needs.
	PullImage(ctx context.Context, ref string) error
	ImageCommand(ctx context.Context, ref string) (entrypoint, cmd []string, err error)
	StopContainer(ctx context.Context, name string) error
	CommitContainer(ctx context.Context, name, ref string, changes ...string) error
	ImagesWithLabel(ctx context.Context, label string) ([]string, error)
	RemoveImage(ctx context.Context, ref string) error
	// ListContainers names the containers (running or not) with a label.
	ListContainers(ctx context.Context, label string) ([]string, error)
	preload.Engine
}

var _ engine = cri.CLI{}

// nicManager is what the provider needs from the SR-IOV manager
// (*sriov.Manager).
type nicManager interface {
	Check(ctx context.Context, workers []string) (*sriov.Plan, error)
	Up(ctx context.Context, nodes sriov.Nodes, workers []string) ([]sriov.Assignment, error)
	ReturnNetdevs(ctx context.Context, nodes sriov.Nodes) error
	Return(ctx context.Context, nodes sriov.Nodes) error
	Status(ctx context.Context, nodes sriov.Nodes) (*sriov.Status, error)
}

var _ nicManager = (*sriov.Manager)(nil)

// clusterLockTimeout bounds the wait for another cluster-up of the same
// cluster: a slow one takes minutes, not this long.
const clusterLockTimeout = 30 * time.Minute

// deps are the provider's boundaries: the real ones in production, fakes
// in the orchestration tests.
type deps struct {
	// detect finds the container CLI and the kind to use; it touches nothing.
	detect func(ctx context.Context) (cli engine, bin string, kind kindcluster.Kind, err error)
	nics   func() (nicManager, error)
	client func(kubeconfig string) (kubernetes.Interface, *rest.Config, error)
	// portFree fails when the host port is taken.
	portFree func(port int) error
	// fetchProxySetup gets the registry proxy's setup script
	// (regproxy.Fetch).
	fetchProxySetup func(ctx context.Context, proxy string) ([]byte, error)
	// serving waits until the registry answers on the host port.
	serving func(ctx context.Context, port int, timeout time.Duration) error
	// deploy applies the components' manifests (multus, sriov-cni, the
	// device plugin); deployInjector network-resources-injector's, when
	// params has it.
	deploy         func(ctx context.Context, client kubernetes.Interface, rc *rest.Config, params components.Params) error
	deployInjector func(ctx context.Context, client kubernetes.Interface, rc *rest.Config, params components.Params) error
	// waitComponents waits for the deployed components.
	waitComponents func(ctx context.Context, client kubernetes.Interface, params components.Params, o components.WaitOptions) error
	// hiddenCgroups finds cgroup v1 hierarchies that kind nodes left;
	// removeCgroups removes them.
	hiddenCgroups func() ([]cgroupv1.Hierarchy, error)
	removeCgroups func([]cgroupv1.Hierarchy) error
	// lockCluster takes the host-wide lock of this cluster's cluster-up,
	// waiting while another process holds it.
	lockCluster func(ctx context.Context) (release func(), err error)
	// unifiedCgroups tells a cgroup v2 host from a v1 or hybrid one.
	unifiedCgroups func() (bool, error)
	// systemdRunning reports whether a node container's first process
	// (its host PID) runs systemd.
	systemdRunning func(pid int) (bool, error)
	// handshake fails unless a TLS server answers on addr (host:port).
	handshake func(ctx context.Context, addr string) error
	// apiReady fails unless the API server says it is ready.
	apiReady func(ctx context.Context, client kubernetes.Interface) error
	// hook, when set, runs before (after=false) and after each step's do;
	// an error it returns fails the step. Tests use it to fail and
	// interrupt cluster-up at every step boundary.
	hook func(ctx context.Context, step string, after bool) error
}

func realDeps(p *Provider) deps {
	return deps{
		detect: func(ctx context.Context) (engine, string, kindcluster.Kind, error) {
			c := p.cfg()
			cli, err := cri.Detect(ctx, c.CRI, p.env.Runner, nil)
			if err != nil {
				return nil, "", nil, err
			}
			var k kindcluster.Kind
			if c.KindVersion == kindcluster.LibraryVersion() {
				k, err = kindcluster.NewLibrary(cli.Name(), p.env.Log)
			} else {
				k, err = kindcluster.FindBinary(ctx, c.KindVersion, cli.Name(), p.kindBinDir(), p.env.Runner, nil)
			}
			return cli, cli.Bin, k, err
		},
		nics: func() (nicManager, error) {
			c := p.cfg()
			return sriov.New(sriov.Options{
				SysfsRoot:      c.SysfsRoot,
				StateDir:       c.SRIOVStateDir,
				Cluster:        c.ClusterName,
				PFCountPerNode: c.PFCountPerNode,
				VFCount:        c.VFsCount,
				Blacklist:      c.PFBlacklist,
			}, p.env.Runner, p.env.Log)
		},
		client:         kube.Client,
		hiddenCgroups:  func() ([]cgroupv1.Hierarchy, error) { return cgroupv1.Find("/proc") },
		removeCgroups:  cgroupv1.Remove,
		unifiedCgroups: cgroupv1.Unified,
		lockCluster: func(ctx context.Context) (func(), error) {
			c := p.cfg()
			return sriov.LockCluster(ctx, c.SRIOVStateDir, c.ClusterName, clusterLockTimeout, func(holder string) {
				p.env.Log.Infof("Waiting for another cluster-up of cluster %s to end (%s)", c.ClusterName, holder)
			})
		},
		systemdRunning: systemdRunning,
		handshake: func(ctx context.Context, addr string) error {
			// Only whether a TLS server answers: a published port
			// accepts connections (the engine's proxy) before anything
			// listens in the container. Nothing is read or trusted.
			d := tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: &tls.Config{InsecureSkipVerify: true}}
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				conn.Close()
			}
			return err
		},
		apiReady:        kube.APIReady,
		portFree:        config.CheckPortFree,
		fetchProxySetup: regproxy.Fetch,
		serving:         localregistry.WaitServing,
		deploy:          p.applying(components.Deploy),
		deployInjector:  p.applying(components.DeployInjector),
		waitComponents: func(ctx context.Context, client kubernetes.Interface, params components.Params, o components.WaitOptions) error {
			return components.Wait(ctx, client, params, o, p.env.Log)
		},
	}
}

// applying gives deploy (components.Deploy, components.DeployInjector) a
// server-side applier for the cluster.
func (p *Provider) applying(deploy func(context.Context, components.Applier, kubernetes.Interface, components.Params, *steplog.Logger) error) func(context.Context, kubernetes.Interface, *rest.Config, components.Params) error {
	return func(ctx context.Context, client kubernetes.Interface, rc *rest.Config, params components.Params) error {
		a, err := kubeapply.NewForConfig(rc, FieldManager)
		if err != nil {
			return err
		}
		return deploy(ctx, a, client, params, p.env.Log)
	}
}

func (p *Provider) cfg() *config.Config { return p.env.Config }

// inEachNode runs fn for every node at once and returns the first error;
// the others are then cancelled.
func inEachNode(ctx context.Context, nodes []string, fn func(ctx context.Context, node string) error) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, n := range nodes {
		g.Go(func() error { return fn(gctx, n) })
	}
	return g.Wait()
}

// setup detects the container engine and the kind to use. It touches nothing.
func (p *Provider) setup(ctx context.Context) error {
	if p.cli != nil {
		return nil
	}
	cli, bin, k, err := p.deps.detect(ctx)
	if err != nil {
		return err
	}
	p.cli, p.bin, p.kind = cli, bin, k
	return nil
}
