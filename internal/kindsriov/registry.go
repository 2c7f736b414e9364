package kindsriov

// The registry steps: the local registry container, and every node told
// to pull registry:5000 from it.

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/localregistry"
	"github.com/kubevirt/kubevirtci-go/internal/regproxy"
)

// startRegistry starts the registry container in the background: nothing
// in cluster-up needs it before the end, so `docker run` and the wait for
// it to answer overlap with the steps after it; waitRegistry joins it.
func (p *Provider) startRegistry(ctx context.Context, st *upState) error {
	// Recorded first: the container may exist before Ensure returns.
	st.made[madeRegistry] = true
	c := p.cfg()
	r := &registryStart{container: c.RegistryContainer()}
	st.registry = r
	r.background = goBackground(ctx, func(ctx context.Context) {
		r.outcome, r.err = localregistry.Ensure(ctx, p.cli, registrySpec(c), p.deps.portFree)
		if r.err == nil {
			p.env.Log.Debugf("registry %s %s on 127.0.0.1:%d", c.RegistryContainer(), r.outcome, c.RegistryHostPort)
			r.err = p.deps.serving(ctx, c.RegistryHostPort, 30*time.Second)
		}
	})
	return nil
}

// registryStart is the registry being started in the background.
type registryStart struct {
	*background
	outcome   localregistry.Outcome
	err       error
	container string
}

// waitRegistry waits for the registry started by startRegistry to answer.
func (p *Provider) waitRegistry(ctx context.Context, st *upState) error {
	r := st.registry
	err := r.wait(ctx)
	st.stopRegistry() // records a registry found there already
	if err != nil {
		return err
	}
	return r.err
}

// stopRegistry ends a registry start still running (Up failed before
// waiting for it) and records what it found: a registry that was there
// already is not this run's to undo.
func (st *upState) stopRegistry() {
	r := st.registry
	if r == nil {
		return
	}
	r.stop()
	if r.outcome == localregistry.Reused && st.made[madeRegistry] {
		delete(st.made, madeRegistry)
		st.existed = append(st.existed, "registry "+r.container)
	}
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
	c := p.cfg()
	if err := p.cli.Remove(ctx, c.RegistryContainer()); err != nil {
		return err
	}
	return p.removeLabelled(ctx, localregistry.Label+"="+c.ClusterName, "registry container")
}

// configureNodes tells every node's containerd where to pull from (the
// registry container for registry:5000, and REGISTRY_MIRRORS) and loads
// br_netfilter with the bridge sysctls: one command per node, all nodes at
// once. containerd reads the hosts.toml files at each pull (config_path),
// so nothing is restarted.
func (p *Provider) configureNodes(ctx context.Context, st *upState) error {
	script := nodeSetupScript(p.cfg())
	p.env.Log.Debugf("   node set-up, in each node:\n%s", indent(script))
	return inEachNode(ctx, st.nodes, func(ctx context.Context, n string) error {
		_, err := p.cli.ExecInput(ctx, strings.NewReader(script), n, "sh", "-s")
		return err
	})
}

// hostsFiles are the hosts.toml files of a cluster's nodes, by path: the
// cluster's registry and each mirrored upstream host.
func hostsFiles(c *config.Config) map[string]string {
	files := map[string]string{localregistry.HostsTomlPath: localregistry.HostsToml(c.RegistryContainer())}
	var hosts []string
	mirrors := map[string][]string{}
	for _, m := range c.RegistryMirrors {
		if mirrors[m.Host] == nil {
			hosts = append(hosts, m.Host)
		}
		mirrors[m.Host] = append(mirrors[m.Host], m.URL)
	}
	for _, h := range hosts {
		files[localregistry.HostsTomlPathOf(h)] = localregistry.MirrorHostsToml(h, mirrors[h])
	}
	return files
}

// nodeSetupScript is the shell script configureNodes runs in each node.
// The paths come from validated registry hosts (no quote can be in them).
func nodeSetupScript(c *config.Config) string {
	files := hostsFiles(c)
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, f := range slices.Sorted(maps.Keys(files)) {
		fmt.Fprintf(&b, "mkdir -p '%s'\ncat > '%s' <<'KUBEVIRTCI_EOF'\n%sKUBEVIRTCI_EOF\n", path.Dir(f), f, files[f])
	}
	// The module may be built in or already loaded on the host; the
	// sysctls fail if bridge netfilter is really missing.
	b.WriteString("modprobe br_netfilter 2>/dev/null || true\n")
	b.WriteString("sysctl -q -w net.bridge.bridge-nf-call-arptables=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1\n")
	return b.String()
}

// preflightProxy fetches the registry proxy's setup script
// (REGISTRY_PROXY, on by default with CI=true): a proxy that does not
// answer is refused before anything is created.
func (p *Provider) preflightProxy(ctx context.Context, st *upState) error {
	c := p.cfg()
	if c.RegistryProxy == "" {
		return nil
	}
	script, err := p.deps.fetchProxySetup(ctx, c.RegistryProxy)
	if err != nil {
		problem := "the registry proxy does not answer: " + err.Error()
		if c.RegistryProxyDefaulted() {
			problem = "CI=true points the nodes at kubevirtci CI's registry proxy, which does not answer: " + err.Error()
		}
		return &config.SettingError{Name: config.EnvRegistryProxy, Value: c.RegistryProxy, Defaulted: c.RegistryProxyDefaulted(),
			Problem: problem,
			Hint:    "set " + config.EnvRegistryProxy + "=" + config.RegistryProxyOff + " to pull without a proxy, or point it at a docker-registry-proxy that answers (host[:port])"}
	}
	st.proxySetup = regproxy.Adapt(script, p.noProxy())
	return nil
}

// noProxy is what the nodes' containerd reaches without the proxy: the
// private ranges, the cluster's registry and the mirrors.
func (p *Provider) noProxy() string {
	c := p.cfg()
	names := []string{c.RegistryContainer()}
	for _, m := range c.RegistryMirrors {
		if u, err := url.Parse(m.URL); err == nil {
			names = append(names, u.Hostname())
		}
	}
	return regproxy.NoProxy(names...)
}

// setupProxy runs the proxy's setup script, adapted to containerd, in
// every node at once: containerd then pulls through the proxy, trusting
// its CA, and is restarted. The background image import starts after it.
func (p *Provider) setupProxy(ctx context.Context, st *upState) error {
	p.env.Log.Debugf("   setup script (from %s, adapted to containerd), in each node:\n%s", regproxy.URL(p.cfg().RegistryProxy), indent(string(st.proxySetup)))
	if err := inEachNode(ctx, st.nodes, func(ctx context.Context, n string) error {
		out, err := p.cli.ExecInput(ctx, bytes.NewReader(st.proxySetup), n, "bash", "-s")
		if err != nil {
			return fmt.Errorf("node %s: the registry proxy's setup script failed (%s=%s; %s=%s pulls without it): %w",
				n, config.EnvRegistryProxy, p.cfg().RegistryProxy, config.EnvRegistryProxy, config.RegistryProxyOff, err)
		}
		p.env.Log.Debugf("   %s: %s", n, strings.TrimSpace(string(out)))
		return nil
	}); err != nil {
		return err
	}
	return nil
}
