package kindsriov

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/cri"
	"github.com/kubevirt/kubevirtci-go/internal/kindcfg"
	"github.com/kubevirt/kubevirtci-go/internal/kube"
	"github.com/kubevirt/kubevirtci-go/internal/kubewait"
	"github.com/kubevirt/kubevirtci-go/internal/localregistry"
	"github.com/kubevirt/kubevirtci-go/internal/sriov"
	steplog "github.com/kubevirt/kubevirtci-go/internal/step"
)

// upState is what the steps of Up hand to each other.
type upState struct {
	kindConfig []byte
	// kindOptions are what kindConfig was rendered with.
	kindOptions kindcfg.Options
	client      kubernetes.Interface
	rest        *rest.Config
	nodes       []string
	assignments []sriov.Assignment
	// nodeImage is the nodes' image when it is not the settings'
	// NodeImage: the one with loadedImages preloaded, the component
	// images the local engine has (the nodes pull the others).
	nodeImage    string
	loadedImages []string
	// create is kind create, running in the background.
	create *createStart
	// registry is the registry container being started in the
	// background.
	registry *registryStart
	// configure is the nodes' configuration running in the background.
	configure *configureStart
	// proxySetup is the registry proxy's setup script, for containerd
	// (REGISTRY_PROXY; nil without a proxy).
	proxySetup []byte
	// made records what this run created (a step's creates), for the
	// rollback; existed, what it found and left as it was.
	made    map[string]bool
	existed []string
}

func (p *Provider) preflight(ctx context.Context, st *upState) error {
	c := p.cfg()
	if c.IPFamily != config.IPv4 && c.NodeImage == p.spec.Images.Node.Image() {
		return &config.SettingError{Name: config.EnvIPFamily, Value: c.IPFamily,
			Problem: "the node image built from source (" + c.NodeImage + ") runs flannel configured for IPv4 only",
			Hint:    "unset it (ipv4), or set " + config.EnvNodeImage + " to an upstream kindest/node image, whose kindnet supports ipv6 and dual"}
	}
	if err := p.setup(ctx); err != nil {
		return err
	}
	exists, err := p.kind.Exists(ctx, c.ClusterName)
	if err != nil {
		return err
	}
	if exists {
		var status strings.Builder
		if err := p.Status(ctx, &status); err != nil {
			fmt.Fprintf(&status, "(status: %v)\n", err)
		}
		return &alreadyUpError{cluster: c.ClusterName, status: status.String()}
	}
	if err := checkFolder(c.StateDir()); err != nil {
		return err
	}
	if err := p.checkRegistryPort(ctx); err != nil {
		return err
	}
	if err := p.checkCgroups(ctx); err != nil {
		return err
	}
	if err := p.preflightSRIOV(ctx); err != nil {
		return err
	}
	if err := p.preflightProxy(ctx, st); err != nil {
		return err
	}
	if err := p.checkKubectlPath(ctx); err != nil {
		return err
	}
	st.kindOptions = p.kindOptions()
	st.kindConfig, err = kindcfg.Render(c, st.kindOptions)
	return err
}

// kindOptions are the provider's own parts of the kind config.
func (p *Provider) kindOptions() kindcfg.Options {
	o := kindcfg.Options{WorkerKubelet: p.spec.WorkerKubelet}
	if p.spec.KubeletRefusesCgroupV1 {
		v2, err := p.deps.unifiedCgroups()
		if err != nil {
			p.env.Log.Debugf("cannot tell the host's cgroup version (%v): letting the kubelet start on cgroup v1", err)
		}
		o.AllowCgroupV1 = !v2
		if o.AllowCgroupV1 {
			p.env.Log.Debugf("cgroup v1 host: the kubelet gets failCgroupV1: false")
		}
	}
	return o
}

// checkKubectlPath refuses a KUBECTL_PATH that the node image (when the
// engine has it; kind pulls it otherwise, and the path is checked in the
// node) does not have, before anything is created.
func (p *Provider) checkKubectlPath(ctx context.Context) error {
	c := p.cfg()
	if c.KubectlPath == "" {
		return nil
	}
	if ok, err := p.cli.ImageExists(ctx, c.NodeImage); err != nil || !ok {
		return err
	}
	ok, err := p.cli.FileInImage(ctx, c.NodeImage, c.KubectlPath)
	if err != nil {
		return fmt.Errorf("looking for %s=%s in %s: %w", config.EnvKubectlPath, c.KubectlPath, c.NodeImage, err)
	}
	if !ok {
		return &config.SettingError{Name: config.EnvKubectlPath, Value: c.KubectlPath,
			Problem: "no such file in the node image " + c.NodeImage,
			Hint:    "unset it to use the node's kubectl (/usr/bin/kubectl, /bin/kubectl or /usr/local/bin/kubectl), or give its path inside the node image"}
	}
	return nil
}

// alreadyUpError is cluster-up on a cluster that runs: nothing is changed.
type alreadyUpError struct{ cluster, status string }

func (e *alreadyUpError) Error() string {
	return fmt.Sprintf("cluster %s is already up; nothing was changed. Use it as it is, or run `make cluster-down` (CLUSTER_NAME=%s) first, or pick another CLUSTER_NAME:\n\n%s",
		e.cluster, e.cluster, strings.TrimRight(e.status, "\n"))
}

// checkRegistryPort fails when the registry's host port is taken by anything
// other than this cluster's own registry.
func (p *Provider) checkRegistryPort(ctx context.Context) error {
	c := p.cfg()
	ct, err := p.cli.Inspect(ctx, c.RegistryContainer())
	if err == nil && ct.Running {
		for _, b := range ct.Ports[fmt.Sprintf("%d/tcp", localregistry.ContainerPort)] {
			if strings.HasSuffix(b, fmt.Sprintf(":%d", c.RegistryHostPort)) {
				return nil
			}
		}
	} else if err != nil && !errors.Is(err, cri.ErrNotFound) {
		return err
	}
	return p.deps.portFree(c.RegistryHostPort)
}

func (p *Provider) waitCluster(ctx context.Context, st *upState) error {
	t := p.cfg().ClusterWaitTimeout
	// The node image's own pods (the pod network, kube-proxy, DNS): a pull
	// that cannot succeed is reported at once, a crash loop once it has
	// restarted a few times (kubewait.CrashRestarts), not after the
	// timeout; while nodes are not Ready, through the pods on them.
	if err := kubewait.NodesReady(ctx, st.client, t, kubewait.FailFast()); err != nil {
		return err
	}
	if err := kubewait.PodsReady(ctx, st.client, "kube-system", "k8s-app=kube-dns", t, kubewait.FailFast()); err != nil {
		return err
	}
	return kubewait.PodsReady(ctx, st.client, "kube-system", "", t, kubewait.FailFast())
}

// configureStart is the nodes' configuration running in the background.
type configureStart struct {
	*background
	err  error
	took time.Duration
}

// startConfigure starts configureNodes in the background: it needs only
// the node containers, and the steps that run beside it do not touch what
// it configures.
func (p *Provider) startConfigure(ctx context.Context, st *upState) error {
	cs := &configureStart{}
	st.configure = cs
	start := time.Now()
	cs.background = goBackground(ctx, func(ctx context.Context) {
		cs.err = p.configureNodes(ctx, st)
		cs.took = time.Since(start)
	})
	return nil
}

// waitConfigure waits for the configuration startConfigure started and
// returns its error.
func (p *Provider) waitConfigure(ctx context.Context, st *upState) error {
	cs := st.configure
	if err := cs.wait(ctx); err != nil {
		return err
	}
	if cs.err != nil {
		return cs.err
	}
	p.env.Log.Debugf("nodes configured in %s", cs.took.Round(100*time.Millisecond))
	return nil
}

// stopBackground ends what still runs in the background when Up returns
// or rolls back: the nodes' configuration, the registry's start (which
// also records a registry found there already), then kind create, which
// the kind library cannot cut short: a failed cluster-up waits for it to
// return (an interrupt ends it sooner: the signal ends its commands too)
// before anything is undone or left for inspection.
func (st *upState) stopBackground(log *steplog.Logger) {
	if st.configure != nil {
		st.configure.stop()
	}
	st.stopRegistry()
	if cs := st.create; cs != nil {
		if ended, _ := cs.ended(); !ended {
			log.Infof("   waiting for kind create to return first")
		}
		cs.stop()
	}
}

// fixUpNodes fixes up the nodes and the storage class, once kind create
// has returned (every node has joined, kind's storage class is there);
// beside them, it checks that etcd runs on tmpfs.
func (p *Provider) fixUpNodes(ctx context.Context, st *upState) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.checkEtcd(ctx, st) })
	g.Go(func() error {
		if err := (kube.FixUps{Client: st.client}).Apply(ctx); err != nil {
			return err
		}
		return kube.EnsureConfigMap(ctx, st.client, "kube-public", "local-registry-hosting",
			localregistry.HostingConfigMap(p.cfg().RegistryHostPort))
	})
	return g.Wait()
}

func (p *Provider) summary(st *upState, took time.Duration) {
	c := p.cfg()
	l := p.env.Log
	ready, waited := p.waitedFor()
	if ready {
		l.Infof("\nCluster %s is ready (%s): %s.", c.ClusterName, took.Round(time.Second), waited)
	} else {
		l.Infof("\nCluster %s is up (%s), its components not checked: %s.", c.ClusterName, took.Round(time.Second), waited)
	}
	l.Infof("  nodes:       %s, %s", c.ControlPlaneNode(), strings.Join(c.WorkerNodes(), ", "))
	l.Infof("  kubeconfig:  %s", c.KubeconfigPath())
	l.Infof("  kubectl:     cluster-up/kubectl.sh get nodes   (or: export KUBECONFIG=%s)", c.KubeconfigPath())
	l.Infof("  registry:    localhost:%d from the host, %s from the cluster", c.RegistryHostPort, localregistry.ClusterHost)
	for _, m := range c.RegistryMirrors {
		l.Infof("  mirror:      %s images from %s first", m.Host, m.URL)
	}
	if c.RegistryProxy != "" {
		l.Infof("  pulls via:   registry proxy %s (%s)", c.RegistryProxy, config.EnvRegistryProxy)
	}
	if len(st.loadedImages) > 0 {
		l.Infof("  images:      %s (loaded from %s, preloaded in node image %s)", strings.Join(st.loadedImages, ", "), p.cli.Name(), st.nodeImage)
	}
	for _, a := range st.assignments {
		var names []string
		for _, pf := range a.PFs {
			names = append(names, pf.Name)
		}
		l.Infof("  %-12s %s (%d VFs each, resource %s)", a.Node+":", strings.Join(names, ", "), c.VFsCount, "kubevirt.io/sriov_net")
	}
	l.Infof("  tear down:   make cluster-down   (with CLUSTER_NAME=%s)", c.ClusterName)
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "     " + l
	}
	return strings.Join(lines, "\n")
}
