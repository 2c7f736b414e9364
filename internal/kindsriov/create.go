package kindsriov

// kind create runs in the background: the steps that need only the node
// containers and the API server (the registry's start, the nodes'
// configuration, the PFs' move, the SR-IOV nodes' preparation) run while
// kubeadm starts the control plane and joins the workers, instead of
// adding their seconds after it (steps.go says why the components wait).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kubevirt/kubevirtci-go/internal/kube"
	"github.com/kubevirt/kubevirtci-go/internal/providerfiles"
	"github.com/kubevirt/kubevirtci-go/internal/sriov"
)

// createStart is kind create running in the background.
type createStart struct {
	*background
	err  error // kind's, once done is closed
	took time.Duration
}

// ended reports whether kind create has returned, and its error.
func (cs *createStart) ended() (bool, error) {
	select {
	case <-cs.done:
		return true, cs.err
	default:
		return false, nil
	}
}

// createPoll is how often the steps that overlap with kind create look
// again for what they wait for (each look is a container inspect or a
// connection attempt, not a process in the nodes).
const createPoll = 250 * time.Millisecond

// startCreate starts kind create. The nodes exist from its first seconds
// on, so the cluster counts as made from the start.
func (p *Provider) startCreate(ctx context.Context, st *upState) error {
	c := p.cfg()
	st.made[madeCluster] = true
	if err := os.MkdirAll(c.StateDir(), 0o755); err != nil {
		return err
	}
	image := c.NodeImage
	if st.nodeImage != "" {
		image = fmt.Sprintf("%s (%s with the component images preloaded)", st.nodeImage, c.NodeImage)
	}
	p.env.Log.Infof("   kind %s, node image %s, config:\n%s", p.kind.Version(), image, indent(string(st.kindConfig)))
	if err := providerfiles.Write(p.kindConfigPath(), st.kindConfig, 0o644); err != nil {
		return err
	}
	cs := &createStart{}
	st.create = cs
	start := time.Now()
	cs.background = goBackground(ctx, func(ctx context.Context) {
		cs.err = p.kind.Create(ctx, c.ClusterName, st.kindConfig, c.KubeconfigPath())
		cs.took = time.Since(start)
	})
	return nil
}

// createFailed is the error of a failed kind create, with what the nodes'
// kubelets said last.
func (p *Provider) createFailed(ctx context.Context, err error) error {
	return fmt.Errorf("kind create cluster %s: %w%s", p.cfg().ClusterName, err, p.kubeletLogs(ctx))
}

// afterCreate bounds what whileCreating still waits for once kind create
// has returned: a joined node's kubelet registers its Node a moment later.
const afterCreate = time.Minute

// whileCreating calls look every createPoll until it returns nil, while
// kind create runs. A create that fails ends the wait with its error; once
// it has succeeded, look has afterCreate more to succeed, then its error
// is returned.
func (p *Provider) whileCreating(ctx context.Context, st *upState, look func(ctx context.Context) error) error {
	tick := time.NewTicker(createPoll)
	defer tick.Stop()
	said := ""
	var deadline time.Time
	for {
		ended, err := st.create.ended()
		if ended && err != nil {
			return p.createFailed(ctx, err)
		}
		err = look(ctx)
		if err == nil {
			return nil
		}
		if ended {
			if deadline.IsZero() {
				deadline = time.Now().Add(afterCreate)
			} else if time.Now().After(deadline) {
				return fmt.Errorf("kind create cluster %s returned %s ago, yet %w", p.cfg().ClusterName, afterCreate, err)
			}
		}
		if why := err.Error(); why != said {
			p.env.Log.Debugf("   not yet: %s", why)
			said = why
		}
		done := st.create.done
		if ended {
			done = nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		case <-done:
		}
	}
}

// labelSRIOVNodes labels each SR-IOV worker for the SR-IOV components
// once its Node has registered, which its kubelet does a moment after
// kind create has joined it at the latest.
func (p *Provider) labelSRIOVNodes(ctx context.Context, st *upState) error {
	labelled := map[string]bool{}
	return p.whileCreating(ctx, st, func(ctx context.Context) error {
		for _, n := range st.sriovNodes() {
			if labelled[n] {
				continue
			}
			err := kube.LabelNodes(ctx, st.client, []string{n}, sriov.NodeLabelKey, sriov.NodeLabelValue)
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("node %s has not registered", n)
			}
			if err != nil {
				return err
			}
			labelled[n] = true
		}
		return nil
	})
}

// waitNodes waits until every node container runs systemd (kind's
// entrypoint has then set up the node: it remounts /sys read-only, which
// the SR-IOV nodes' preparation undoes) and the API server answers (a TLS
// handshake on its published port: each look costs no process). The
// steps that overlap with kind create start then, and not as soon as the
// nodes boot: until kubeadm has started the control plane, booting the
// nodes keeps both CPUs of a small host busy, and whatever ran beside it
// delayed kind create by as long (4 to 7 s, measured on 2 cores); while
// kubeadm waits for the control plane and joins the workers, they are
// partly idle.
func (p *Provider) waitNodes(ctx context.Context, st *upState) error {
	c := p.cfg()
	want := append([]string{c.ControlPlaneNode()}, c.WorkerNodes()...)
	booted := map[string]bool{}
	pids := map[string]int{}
	addr := ""
	err := p.whileCreating(ctx, st, func(ctx context.Context) error {
		for _, n := range want {
			if booted[n] {
				continue
			}
			pid := pids[n]
			if pid == 0 {
				var err error
				if pid, err = p.cli.PID(ctx, n); err != nil {
					return fmt.Errorf("node %s does not run: %w", n, err)
				}
				pids[n] = pid
			}
			ok, err := p.deps.systemdRunning(pid)
			if err != nil {
				return fmt.Errorf("node %s: %w", n, err)
			}
			if !ok {
				return fmt.Errorf("node %s (PID %d) does not run systemd", n, pid)
			}
			booted[n] = true
		}
		if addr == "" {
			ct, err := p.cli.Inspect(ctx, c.ControlPlaneNode())
			if err != nil {
				return err
			}
			if ports := ct.Ports[apiServerPort]; len(ports) > 0 {
				addr = dialable(ports[0])
			}
			if addr == "" {
				return nil // no port to try: waitAPIServer asks kind
			}
		}
		if err := p.deps.handshake(ctx, addr); err != nil {
			return fmt.Errorf("the API server does not answer on %s: %w", addr, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	st.nodes = want
	p.env.Log.Debugf("   nodes %s running, the API server answering", strings.Join(want, ", "))
	return nil
}

// systemdRunning reports whether process pid (a node container's first
// process, seen from the host) runs systemd, to which kind's entrypoint
// hands over once it has set up the node.
func systemdRunning(pid int) (bool, error) {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false, err
	}
	return path.Base(exe) == "systemd", nil
}

// apiServerPort is the API server's port in the control-plane node.
const apiServerPort = "6443/tcp"

// waitAPIServer waits until the API server says it is ready, with the
// client made from the kubeconfig kind reads from the control-plane node,
// which it writes to the kubeconfig path (kind create writes the same there
// when it returns).
func (p *Provider) waitAPIServer(ctx context.Context, st *upState) error {
	c := p.cfg()
	var tried time.Time
	return p.whileCreating(ctx, st, func(ctx context.Context) error {
		if st.client == nil {
			// Each try runs commands in the control-plane node: at
			// most one a second.
			if time.Since(tried) < time.Second {
				return errors.New("no kubeconfig from kind yet")
			}
			tried = time.Now()
			kubeconfig, err := p.kind.KubeConfig(ctx, c.ClusterName)
			if err != nil {
				return fmt.Errorf("no kubeconfig from kind: %w", err)
			}
			if err := providerfiles.Write(c.KubeconfigPath(), kubeconfig, 0o600); err != nil {
				return err
			}
			if st.client, st.rest, err = p.deps.client(c.KubeconfigPath()); err != nil {
				return err
			}
		}
		if err := p.deps.apiReady(ctx, st.client); err != nil {
			return fmt.Errorf("the API server is not ready: %w", err)
		}
		return nil
	})
}

// dialable turns a published address as the engine reports it (host IP,
// a colon, host port: 127.0.0.1:6443, ::1:6443, 0.0.0.0:6443) into one to
// connect to; "" when it has no port (the engine picks one).
func dialable(published string) string {
	i := strings.LastIndex(published, ":")
	if i < 0 || i == len(published)-1 {
		return ""
	}
	host, port := strings.Trim(published[:i], "[]"), published[i+1:]
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// waitCreate waits for kind create to return (the workers have joined).
func (p *Provider) waitCreate(ctx context.Context, st *upState) error {
	cs := st.create
	if err := cs.wait(ctx); err != nil {
		return err
	}
	if cs.err != nil {
		return p.createFailed(ctx, cs.err)
	}
	p.env.Log.Debugf("   kind create returned after %s", cs.took.Round(100*time.Millisecond))
	return os.Chmod(p.cfg().KubeconfigPath(), 0o600)
}
