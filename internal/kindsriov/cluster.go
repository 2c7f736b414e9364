package kindsriov

// The kind cluster's deletion (with the cgroup v1 leftovers of older node
// images), and what a failed create shows; its creation is in create.go.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/cgroupv1"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/nodeimage"
)

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

// deleteCluster is the undo of startCreate: the nodes, the kubeconfig,
// kind's config, and the folder when nothing else is in it.
func (p *Provider) deleteCluster(ctx context.Context) error {
	c := p.cfg()
	if err := p.kind.Delete(ctx, c.ClusterName, c.KubeconfigPath()); err != nil {
		if !c.CI {
			return err
		}
		p.env.Log.Infof("   %s=true: going on despite the failed delete: %v", config.EnvCI, err)
	} else if err := p.removeLabelled(ctx, kindNodeLabel+"="+c.ClusterName, "node containers of cluster "+c.ClusterName); err != nil {
		return err
	}
	if err := p.removeFilesAndDir(c.KubeconfigPath(), p.kindConfigPath(), p.syncCachePath()); err != nil {
		return err
	}
	return p.removeHiddenCgroups(ctx)
}

// kindNodeLabel is the label kind puts on every node container.
const kindNodeLabel = "io.x-k8s.kind.cluster"

// unfinishedTimeout bounds the wait for containers whose creation was cut
// short; creating a node copies the node image's /var into a new volume,
// seconds to a minute on a slow disk.
const unfinishedTimeout = 3 * time.Minute

// unfinishedPoll is how often they are looked for again.
const unfinishedPoll = 250 * time.Millisecond

// removeLabelled removes the containers with label (key=value) until none
// is left. When cluster-up is interrupted while a `docker run` of it
// (kind's for the nodes, ours for the registry) is under way, the signal
// ends the client, but the engine goes on creating the container it asked
// for. Until it is done (for a node it fills the /var volume from the
// image, seconds) such a container is listed, yet cannot be removed ("No
// such container", which `rm --force` does not count as an error), and
// afterwards it stays, created and never started. So what carries the
// label is looked for again until it is gone.
func (p *Provider) removeLabelled(ctx context.Context, label, what string) error {
	ctx, cancel := context.WithTimeout(ctx, unfinishedTimeout)
	defer cancel()
	for round := 0; ; round++ {
		names, err := p.cli.ListContainers(ctx, label)
		if err != nil || len(names) == 0 {
			return err
		}
		if round > 0 { // still there after a removal
			if round == 1 {
				p.env.Log.Infof("   waiting for the engine to finish creating %s (their creation was cut short), to remove them", strings.Join(names, ", "))
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s %s still there after %s (the engine is still creating them, or cannot remove them): %w", what, strings.Join(names, ", "), unfinishedTimeout, ctx.Err())
			case <-time.After(unfinishedPoll):
			}
		}
		for _, n := range names {
			if err := p.cli.Remove(ctx, n); err != nil {
				return err
			}
		}
	}
}

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
