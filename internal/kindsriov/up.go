package kindsriov

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubevirt/kubevirtci-go/internal/cgroupv1"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/cri"
	"github.com/kubevirt/kubevirtci-go/internal/kindcfg"
	"github.com/kubevirt/kubevirtci-go/internal/kube"
	"github.com/kubevirt/kubevirtci-go/internal/kubewait"
	"github.com/kubevirt/kubevirtci-go/internal/localregistry"
	"github.com/kubevirt/kubevirtci-go/internal/nodeimage"
	"github.com/kubevirt/kubevirtci-go/internal/providerfiles"
	"github.com/kubevirt/kubevirtci-go/internal/sriov"
)

// upState is what the steps of Up hand to each other.
type upState struct {
	kindConfig  []byte
	client      kubernetes.Interface
	rest        *rest.Config
	nodes       []string
	assignments []sriov.Assignment
	// imageLoad loads component images into the nodes in the background;
	// loadedImages are the ones it loaded from the local engine (the
	// nodes pull the others).
	imageLoad    *imageLoad
	loadedImages []string
	// made records what this run created (a step's creates), for the
	// rollback; existed, what it found and left as it was.
	made    map[string]bool
	existed []string
}

func (p *Provider) preflight(ctx context.Context, st *upState) error {
	if err := p.setup(ctx); err != nil {
		return err
	}
	c := p.cfg()
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
	if err := p.checkRegistryPort(ctx); err != nil {
		return err
	}
	if err := p.checkCgroups(ctx); err != nil {
		return err
	}
	if err := p.preflightSRIOV(ctx); err != nil {
		return err
	}
	st.kindConfig, err = kindcfg.Render(c, p.kindOptions())
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

func (p *Provider) createCluster(ctx context.Context, st *upState) error {
	c := p.cfg()
	st.made[madeCluster] = true
	if err := os.MkdirAll(c.StateDir(), 0o755); err != nil {
		return err
	}
	p.env.Log.Infof("   kind %s, node image %s, config:\n%s", p.kind.Version(), c.NodeImage, indent(string(st.kindConfig)))
	if err := providerfiles.Write(p.kindConfigPath(), st.kindConfig, 0o644); err != nil {
		return err
	}
	if err := p.kind.Create(ctx, c.ClusterName, st.kindConfig, c.KubeconfigPath()); err != nil {
		return fmt.Errorf("kind create cluster %s: %w%s", c.ClusterName, err, p.kubeletLogs(ctx))
	}
	nodes, err := p.kind.Nodes(ctx, c.ClusterName)
	if err != nil {
		return err
	}
	st.nodes = nodes
	if st.imageLoad != nil {
		close(st.imageLoad.created)
	}
	return os.Chmod(c.KubeconfigPath(), 0o600)
}

func (p *Provider) kindConfigPath() string {
	return filepath.Join(p.cfg().StateDir(), "kind-config.yaml")
}

func (p *Provider) syncCachePath() string {
	return filepath.Join(p.cfg().StateDir(), "sync-cache.json")
}

// kindBinDir is where a kind release other than the compiled-in one is
// built (KIND_VERSION): the cache folder of the image builds, shared by
// every checkout, so that cluster-down leaves no file in _ci-configs and
// the next cluster-up needs no rebuild.
func (p *Provider) kindBinDir() string {
	getenv := p.env.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if d := nodeimage.DefaultCacheDir(getenv); d != "" {
		return filepath.Join(d, "bin")
	}
	return filepath.Join(os.TempDir(), "kubevirtci-bin")
}

// deleteCluster is the undo of createCluster: the nodes, the kubeconfig,
// kind's config, and the folder when nothing else is in it.
func (p *Provider) deleteCluster(ctx context.Context) error {
	c := p.cfg()
	if err := p.kind.Delete(ctx, c.ClusterName, c.KubeconfigPath()); err != nil {
		if !c.CI {
			return err
		}
		p.env.Log.Infof("   %s=true: going on despite the failed delete: %v", config.EnvCI, err)
	}
	if err := p.removeFilesAndDir(c.KubeconfigPath(), p.kindConfigPath(), p.syncCachePath()); err != nil {
		return err
	}
	return p.removeHiddenCgroups(ctx)
}

// kindNodeLabel is the label kind puts on every node container.
const kindNodeLabel = "io.x-k8s.kind.cluster"

// checkCgroups refuses to start while cgroup v1 hierarchies that kind
// nodes left behind are there and no kind node runs (they are garbage then,
// and they keep new nodes from starting); with kind nodes running it only
// warns, since those nodes may be using them.
func (p *Provider) checkCgroups(ctx context.Context) error {
	hs, err := p.deps.hiddenCgroups()
	if err != nil {
		p.env.Log.Debugf("cannot look for cgroup v1 leftovers: %v", err)
		return nil
	}
	if len(hs) == 0 {
		return nil
	}
	nodes, err := p.cli.ListContainers(ctx, kindNodeLabel)
	if err != nil {
		return err
	}
	list := cgroupList(hs)
	if len(nodes) > 0 {
		p.env.Log.Infof("   warning: cgroup v1 hierarchies %s are mounted by no one on the host; the kind nodes running (%s) may use them. If the new nodes fail to start (the kubelet says cgroup-root [\"kubelet\"] doesn't exist), take those clusters down first", list, strings.Join(nodes, ", "))
		return nil
	}
	return fmt.Errorf("cgroup v1 hierarchies %s are left on this host by the nodes of an earlier kind cluster (the node images of older kind releases, such as 0.11.1, make them) and no kind node runs; while they are there new kind nodes fail to start (the kubelet says cgroup-root [\"kubelet\"] doesn't exist). `make cluster-down` removes them", list)
}

// removeHiddenCgroups removes the cgroup v1 hierarchies that kind nodes
// left, once no kind node runs on the host.
func (p *Provider) removeHiddenCgroups(ctx context.Context) error {
	hs, err := p.deps.hiddenCgroups()
	if err != nil || len(hs) == 0 {
		return err
	}
	nodes, err := p.cli.ListContainers(ctx, kindNodeLabel)
	if err != nil {
		return err
	}
	if len(nodes) > 0 {
		p.env.Log.Infof("   keeping cgroup v1 hierarchies %s that kind nodes left: kind nodes still run (%s); the cluster-down of the last of them removes them", cgroupList(hs), strings.Join(nodes, ", "))
		return nil
	}
	if err := p.deps.removeCgroups(hs); err != nil {
		return err
	}
	p.env.Log.Infof("   removed cgroup v1 hierarchies that kind nodes left: %s", cgroupList(hs))
	return nil
}

func cgroupList(hs []cgroupv1.Hierarchy) string {
	var s []string
	for _, h := range hs {
		s = append(s, h.String())
	}
	return strings.Join(s, ", ")
}

// kubeletLogs is what the kubelet of each node said last, for the error of
// a failed kind create: kubeadm's exit status alone does not say why.
func (p *Provider) kubeletLogs(ctx context.Context) string {
	nodes, err := p.kind.Nodes(ctx, p.cfg().ClusterName)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, n := range nodes {
		out, err := p.cli.Exec(ctx, n, "journalctl", "-u", "kubelet", "--no-pager", "-o", "cat", "-n", "8")
		if lines := strings.TrimSpace(string(out)); err == nil && lines != "" && !strings.HasPrefix(lines, "-- No entries --") {
			fmt.Fprintf(&b, "\n\nthe kubelet of %s said last:\n%s", n, indent(lines))
		}
	}
	return b.String()
}

func (p *Provider) writeFiles(ctx context.Context, st *upState) error {
	c := p.cfg()
	st.made[madeFiles] = true
	src, err := p.kubectlInNode(ctx)
	if err != nil {
		return err
	}
	tmp := c.KubectlHostPath() + ".tmp"
	if err := p.cli.CopyFrom(ctx, c.ControlPlaneNode(), src, tmp); err != nil {
		return fmt.Errorf("copying kubectl out of %s: %w", c.ControlPlaneNode(), err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, c.KubectlHostPath()); err != nil {
		return err
	}
	if err := providerfiles.Write(c.ConfigProviderPath(), providerfiles.ConfigProvider(c), 0o644); err != nil {
		return err
	}
	st.client, st.rest, err = p.deps.client(c.KubeconfigPath())
	return err
}

// removeFiles is the undo of writeFiles.
func (p *Provider) removeFiles(ctx context.Context) error {
	c := p.cfg()
	return removeAll(c.KubectlHostPath(), c.KubectlHostPath()+".tmp", c.ConfigProviderPath())
}

// removeFilesAndDir removes files, then the cluster's folder and its
// parent when nothing else is left in them.
func (p *Provider) removeFilesAndDir(files ...string) error {
	if err := removeAll(files...); err != nil {
		return err
	}
	c := p.cfg()
	// The folders too, up to the checkout's _ci-configs, when nothing else
	// is left in them.
	dirs := []string{c.StateDir(), c.ConfigPath}
	if parent := filepath.Dir(c.ConfigPath); filepath.Base(parent) == "_ci-configs" {
		dirs = append(dirs, parent)
	}
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			p.env.Log.Debugf("keeping %s: %v", d, err)
			break
		}
	}
	return nil
}

func removeAll(files ...string) error {
	var errs []error
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// kubectlInNode finds kubectl in the control-plane node: KUBECTL_PATH when
// set, else the usual locations. Symlinks are resolved so that the real
// binary is copied.
func (p *Provider) kubectlInNode(ctx context.Context) (string, error) {
	c := p.cfg()
	candidates := []string{"/usr/bin/kubectl", "/bin/kubectl", "/usr/local/bin/kubectl"}
	if c.KubectlPath != "" {
		candidates = []string{c.KubectlPath}
	}
	for _, path := range candidates {
		out, err := p.cli.Exec(ctx, c.ControlPlaneNode(), "readlink", "-e", path)
		if err == nil {
			return strings.TrimSpace(string(out)), nil
		}
	}
	if c.KubectlPath != "" {
		return "", fmt.Errorf("%s=%s: no such file in node %s; unset it to probe the usual locations, or give kubectl's path inside the node image", config.EnvKubectlPath, c.KubectlPath, c.ControlPlaneNode())
	}
	return "", fmt.Errorf("kubectl not found in node %s at %s; set %s to its path inside the node image", c.ControlPlaneNode(), strings.Join(candidates, ", "), config.EnvKubectlPath)
}

func (p *Provider) checkEtcd(ctx context.Context, st *upState) error {
	c := p.cfg()
	if !c.EtcdInMemory {
		p.env.Log.Debugf("etcd in memory not requested (%s=false)", config.EnvEtcdInMemory)
		return nil
	}
	out, err := p.cli.Exec(ctx, c.ControlPlaneNode(), "stat", "-f", "-c", "%T", c.EtcdDataDir)
	if err != nil {
		return err
	}
	if fs := strings.TrimSpace(string(out)); fs != "tmpfs" {
		return fmt.Errorf("etcd data dir %s in %s is on %q, not tmpfs (%s=true asked for etcd in memory)", c.EtcdDataDir, c.ControlPlaneNode(), fs, config.EnvEtcdInMemory)
	}
	return nil
}

func (p *Provider) startRegistry(ctx context.Context, st *upState) error {
	c := p.cfg()
	// Recorded first: Ensure may fail after starting a container.
	st.made[madeRegistry] = true
	outcome, err := localregistry.Ensure(ctx, p.cli, registrySpec(c), p.deps.portFree)
	if outcome == localregistry.Reused {
		delete(st.made, madeRegistry)
		st.existed = append(st.existed, "registry "+c.RegistryContainer())
	}
	if err != nil {
		return err
	}
	p.env.Log.Debugf("registry %s %s on 127.0.0.1:%d", c.RegistryContainer(), outcome, c.RegistryHostPort)
	return p.deps.serving(ctx, c.RegistryHostPort, 30*time.Second)
}

func registrySpec(c *config.Config) localregistry.Spec {
	return localregistry.Spec{
		Container: c.RegistryContainer(),
		Image:     c.RegistryImage,
		HostPort:  c.RegistryHostPort,
		Cluster:   c.ClusterName,
	}
}

// removeRegistry is the undo of startRegistry.
func (p *Provider) removeRegistry(ctx context.Context) error {
	return p.cli.Remove(ctx, p.cfg().RegistryContainer())
}

// configureNodes makes every node pull registry:5000 from the registry
// container and loads br_netfilter with the bridge sysctls.
func (p *Provider) configureNodes(ctx context.Context, st *upState) error {
	c := p.cfg()
	hosts := localregistry.HostsToml(c.RegistryContainer())
	dir := filepath.Dir(localregistry.HostsTomlPath)
	for _, n := range st.nodes {
		if _, err := p.cli.Exec(ctx, n, "mkdir", "-p", dir); err != nil {
			return err
		}
		if _, err := p.cli.ExecInput(ctx, strings.NewReader(hosts), n, "tee", localregistry.HostsTomlPath); err != nil {
			return err
		}
		if _, err := p.cli.Exec(ctx, n, "modprobe", "br_netfilter"); err != nil {
			// The module may be built in or already loaded on the host;
			// the sysctls below fail if bridge netfilter is really missing.
			p.env.Log.Debugf("%s: modprobe br_netfilter: %v", n, err)
		}
		if _, err := p.cli.Exec(ctx, n, "sysctl", "-w",
			"net.bridge.bridge-nf-call-arptables=1",
			"net.bridge.bridge-nf-call-iptables=1",
			"net.bridge.bridge-nf-call-ip6tables=1"); err != nil {
			return err
		}
	}
	return nil
}

func (p *Provider) waitCluster(ctx context.Context, st *upState) error {
	t := p.cfg().ClusterWaitTimeout
	if err := kubewait.NodesReady(ctx, st.client, t); err != nil {
		return err
	}
	if err := kubewait.PodsReady(ctx, st.client, "kube-system", "k8s-app=kube-dns", t); err != nil {
		return err
	}
	return kubewait.PodsReady(ctx, st.client, "kube-system", "", t)
}

func (p *Provider) fixUps(ctx context.Context, st *upState) error {
	if err := (kube.FixUps{Client: st.client}).Apply(ctx); err != nil {
		return err
	}
	return kube.EnsureConfigMap(ctx, st.client, "kube-public", "local-registry-hosting",
		localregistry.HostingConfigMap(p.cfg().RegistryHostPort))
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
	if len(st.loadedImages) > 0 {
		l.Infof("  images:      %s (loaded from %s)", strings.Join(st.loadedImages, ", "), p.cli.Name())
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
