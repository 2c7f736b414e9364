package kindsriov

// The registry steps: the local registry container, and every node told
// to pull registry:5000 from it.

import (
	"context"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/localregistry"
)

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
