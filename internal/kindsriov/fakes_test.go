package kindsriov

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/cgroupv1"
	"github.com/kubevirt/kubevirtci-go/internal/components"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/cri"
	"github.com/kubevirt/kubevirtci-go/internal/kindcluster"
	"github.com/kubevirt/kubevirtci-go/internal/sriov"
	steplog "github.com/kubevirt/kubevirtci-go/internal/step"
	"github.com/kubevirt/kubevirtci-go/providers"
)

// The fakes below share one world: the host's containers, kind clusters,
// PFs and SR-IOV ledgers. They keep the rules the real parts keep (a
// deleted node's PFs fall back to the host with their VFs still set; a VF
// count cannot be reset while a VM in a live node holds a VF) so that the
// orchestration tests can tell a right order from a wrong one.

type fakeContainer struct {
	cri.Container
	cluster string // the kind cluster it is a node of
	vm      bool   // a VM in this node holds a VF
	// creating: the engine is still creating it (its docker run was
	// killed): listed, but a removal finds no such container, this many
	// more times.
	creating int
}

type fakePF struct {
	name   string
	node   string // "" on the host
	vfs    int
	origVF int
}

type world struct {
	mu         sync.Mutex
	containers map[string]*fakeContainer
	images     map[string]bool
	pfs        []*fakePF
	ledgers    map[string][]string // cluster → PF names
	pid        int
	// kubeletLog is what journalctl -u kubelet prints in a node.
	kubeletLog map[string]string
	// cgroups are the hidden cgroup v1 hierarchies on the host.
	cgroups []cgroupv1.Hierarchy
	// scripts are the shell scripts run in each node (sh -s, bash -s),
	// in order.
	scripts map[string][]string
	// copies counts the files copied out of containers (kubectl).
	copies int
	// proxySetup is what the registry proxy serves at /setup/systemd.
	proxySetup string
	// fail makes the named operation fail once: "kind create",
	// "kind create cut short" (the nodes still being created when it
	// fails), "kind delete", "registry run", "registry run cut short", "registry rm", "nics up", "nics up no rollback",
	// "return netdevs", "proxy" (the proxy does not answer), "bash -s"
	// (a script in a node).
	fail map[string]error
	// createGate, when set, holds kind create, once its nodes run, until
	// it is closed; createReturned says whether Create has returned.
	createGate     chan struct{}
	createReturned bool
}

func newWorld(pfs ...string) *world {
	w := &world{containers: map[string]*fakeContainer{}, images: map[string]bool{"quay.io/kubevirtci/library-registry:2.7.1": true}, ledgers: map[string][]string{}, scripts: map[string][]string{}, fail: map[string]error{},
		proxySetup: "echo 'Environment=\"HTTPS_PROXY=http://proxy:3128/\"' >> /etc/systemd/system/docker.service.d/http-proxy.conf\nsystemctl restart docker.service\n"}
	for _, n := range pfs {
		w.pfs = append(w.pfs, &fakePF{name: n, origVF: 0})
	}
	return w
}

func (w *world) failing(op string) error {
	err := w.fail[op]
	delete(w.fail, op)
	return err
}

func (w *world) pf(name string) *fakePF {
	for _, p := range w.pfs {
		if p.name == name {
			return p
		}
	}
	return nil
}

// snapshot is the host's state as a person would check it.
func (w *world) snapshot(configDir string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var lines []string
	for n, c := range w.containers {
		lines = append(lines, fmt.Sprintf("container %s running=%v", n, c.Running))
	}
	for _, p := range w.pfs {
		where := "host"
		if p.node != "" {
			where = p.node
		}
		lines = append(lines, fmt.Sprintf("PF %s in %s, %d VFs", p.name, where, p.vfs))
	}
	for c, pfs := range w.ledgers {
		lines = append(lines, fmt.Sprintf("ledger %s: %v", c, pfs))
	}
	filepath.Walk(configDir, func(path string, info os.FileInfo, err error) error {
		if err == nil && path != configDir {
			rel, _ := filepath.Rel(configDir, path)
			lines = append(lines, "file "+rel)
		}
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// fakeEngine is the container CLI.
type fakeEngine struct{ w *world }

func (e fakeEngine) Name() string { return "docker" }

func (e fakeEngine) Inspect(ctx context.Context, name string) (*cri.Container, error) {
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	c, ok := e.w.containers[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, cri.ErrNotFound)
	}
	ct := c.Container
	return &ct, nil
}

func (e fakeEngine) RunDetached(ctx context.Context, s cri.RunSpec) (string, error) {
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	if _, ok := e.w.containers[s.Name]; ok {
		return "", fmt.Errorf("docker run: name %s in use", s.Name)
	}
	e.w.pid++
	if len(s.Publish) == 0 { // a throwaway container (the preload's)
		e.w.containers[s.Name] = &fakeContainer{Container: cri.Container{Name: s.Name, Image: s.Image, Running: true, PID: e.w.pid, Labels: s.Labels}}
		return s.Name, nil
	}
	e.w.containers[s.Name] = &fakeContainer{Container: cri.Container{
		Name: s.Name, Image: s.Image, ImageID: "sha256:" + s.Image, Running: true, PID: e.w.pid,
		Networks: map[string]string{s.Network: "172.18.0.9"}, Ports: map[string][]string{"5000/tcp": {strings.TrimSuffix(s.Publish[0], ":5000")}},
		RestartPolicy: s.RestartPolicy, Labels: s.Labels,
	}}
	if err := e.w.failing("registry run cut short"); err != nil {
		// The client was ended; the engine goes on creating it, and
		// leaves it created, never started.
		c := e.w.containers[s.Name]
		c.Running, c.PID, c.creating = false, 0, 3
		return "", err
	}
	// Started, then failing (as a container whose start fails after create).
	return s.Name, e.w.failing("registry run")
}

func (e fakeEngine) Remove(ctx context.Context, name string) error {
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	if c := e.w.containers[name]; c != nil && c.cluster == "" {
		if err := e.w.failing("registry rm"); err != nil {
			return err
		}
	}
	if c := e.w.containers[name]; c != nil && c.creating > 0 {
		c.creating-- // "No such container", which rm --force ignores
		return nil
	}
	delete(e.w.containers, name)
	return nil
}

func (e fakeEngine) ImageID(ctx context.Context, ref string) (string, error) {
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	if !e.w.images[ref] {
		return "", fmt.Errorf("no such image %s", ref)
	}
	return "sha256:" + ref, nil
}

func (e fakeEngine) LocalImageID(ctx context.Context, ref string) (string, bool, error) {
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	if !e.w.images[ref] {
		return "", false, nil
	}
	return "sha256:" + ref, true, nil
}

func (e fakeEngine) ImageExists(ctx context.Context, ref string) (bool, error) {
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	return e.w.images[ref], nil
}

// FileInImage: the fake node image has kubectl at /usr/bin/kubectl only.
func (e fakeEngine) FileInImage(ctx context.Context, image, path string) (bool, error) {
	return path == "/usr/bin/kubectl", nil
}

func (e fakeEngine) PID(ctx context.Context, name string) (int, error) {
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	c, ok := e.w.containers[name]
	if !ok || !c.Running {
		return 0, fmt.Errorf("%s: %w", name, cri.ErrNotFound)
	}
	return c.PID, nil
}

func (e fakeEngine) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	return e.ExecInput(ctx, nil, name, args...)
}

func (e fakeEngine) ExecInput(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	if _, err := e.PID(ctx, name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch args[0] {
	case "readlink":
		return []byte(args[len(args)-1] + "\n"), nil
	case "stat":
		return []byte("tmpfs\n"), nil
	case "journalctl":
		e.w.mu.Lock()
		defer e.w.mu.Unlock()
		return []byte(e.w.kubeletLog[name]), nil
	case "sh", "bash":
		if args[1] == "-c" { // sriov.PrepareNode: /dev/vfio/vfio's mode, the mounts
			return []byte("vfio 666\nsysfs /sys sysfs rw,nosuid 0 0\n"), nil
		}
		script, err := io.ReadAll(stdin)
		if err != nil {
			return nil, err
		}
		e.w.mu.Lock()
		defer e.w.mu.Unlock()
		e.w.scripts[name] = append(e.w.scripts[name], string(script))
		if args[0] == "bash" {
			return nil, e.w.failing("bash -s")
		}
	}
	return nil, nil
}

func (e fakeEngine) CopyFrom(ctx context.Context, name, src, dst string) error {
	if _, err := e.PID(ctx, name); err != nil {
		return err
	}
	e.w.mu.Lock()
	e.w.copies++
	e.w.mu.Unlock()
	return os.WriteFile(dst, []byte("kubectl"), 0o644)
}

func (e fakeEngine) ListContainers(ctx context.Context, label string) ([]string, error) {
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	key, value, withValue := strings.Cut(label, "=")
	var out []string
	for n, c := range e.w.containers {
		v, ok := c.Labels[key]
		if key == kindNodeLabel {
			v, ok = c.cluster, c.cluster != ""
		}
		if ok && (!withValue || v == value) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (e fakeEngine) SaveImages(ctx context.Context, file string, refs ...string) error {
	return os.WriteFile(file, []byte(strings.Join(refs, "\n")), 0o644)
}

func (e fakeEngine) PullImage(ctx context.Context, ref string) error {
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	e.w.images[ref] = true
	return nil
}

func (e fakeEngine) ImageCommand(ctx context.Context, ref string) ([]string, []string, error) {
	return []string{"/usr/local/bin/entrypoint", "/sbin/init"}, nil, nil
}

func (e fakeEngine) StopContainer(ctx context.Context, name string) error {
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	if c := e.w.containers[name]; c != nil {
		c.Running = false
	}
	return nil
}

func (e fakeEngine) CommitContainer(ctx context.Context, name, ref string, changes ...string) error {
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	e.w.images[ref] = true
	return nil
}

func (e fakeEngine) ImagesWithLabel(ctx context.Context, label string) ([]string, error) {
	return nil, nil
}

func (e fakeEngine) RemoveImage(ctx context.Context, ref string) error {
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	delete(e.w.images, ref)
	return nil
}

// fakeKind creates node containers in the world.
type fakeKind struct {
	w     *world
	nodes []string // the nodes Create makes
}

func (k fakeKind) Version() string { return kindcluster.LibraryVersion() }

func (k fakeKind) Create(ctx context.Context, name string, cfg []byte, kubeconfig string) error {
	k.w.mu.Lock()
	if err := k.w.failing("kind create before the nodes"); err != nil {
		k.w.mu.Unlock()
		return err // e.g. the node image cannot be pulled
	}
	if err := k.w.failing("kind create cut short"); err != nil {
		// The docker clients were killed while the engine created the
		// nodes: it goes on, then leaves them created, never started.
		for _, n := range k.nodes {
			k.w.containers[n] = &fakeContainer{Container: cri.Container{Name: n}, cluster: name, creating: 3}
		}
		k.w.mu.Unlock()
		return err
	}
	for _, n := range k.nodes {
		k.w.pid++
		k.w.containers[n] = &fakeContainer{Container: cri.Container{Name: n, Running: true, PID: k.w.pid}, cluster: name}
	}
	gate := k.w.createGate
	k.w.mu.Unlock()
	defer func() {
		k.w.mu.Lock()
		k.w.createReturned = true
		k.w.mu.Unlock()
	}()
	if gate != nil {
		<-gate // kubeadm starts the control plane, joins the workers
	}
	k.w.mu.Lock()
	err := k.w.failing("kind create")
	k.w.mu.Unlock()
	if err != nil {
		return err // nodes kept, as with --retain
	}
	return os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\n"), 0o600)
}

// created says whether kind create has returned.
func (w *world) created() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.createReturned
}

func (k fakeKind) Delete(ctx context.Context, name, kubeconfig string) error {
	k.w.mu.Lock()
	defer k.w.mu.Unlock()
	if err := k.w.failing("kind delete"); err != nil {
		return err
	}
	for n, c := range k.w.containers {
		if c.cluster != name || c.creating > 0 {
			continue // kind's rm --force finds no such container yet
		}
		delete(k.w.containers, n)
		// PFs still inside are lost: the kernel destroys the virtual
		// devices of a dead namespace (the simulated PFs), and cluster-down
		// must never rely on it handing real ones back.
		for _, p := range k.w.pfs {
			if p.node == n {
				p.node = "(lost with its node)"
			}
		}
	}
	return nil
}

func (k fakeKind) Exists(ctx context.Context, name string) (bool, error) {
	k.w.mu.Lock()
	defer k.w.mu.Unlock()
	for _, c := range k.w.containers {
		if c.cluster == name {
			return true, nil
		}
	}
	return false, nil
}

func (k fakeKind) KubeConfig(ctx context.Context, name string) ([]byte, error) {
	k.w.mu.Lock()
	defer k.w.mu.Unlock()
	if c, ok := k.w.containers[name+"-control-plane"]; !ok || !c.Running {
		return nil, fmt.Errorf("no control plane node of cluster %s runs", name)
	}
	return []byte("apiVersion: v1\nkind: Config\n"), nil
}

func (k fakeKind) Nodes(ctx context.Context, name string) ([]string, error) {
	k.w.mu.Lock()
	defer k.w.mu.Unlock()
	var out []string
	for n, c := range k.w.containers {
		if c.cluster == name {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// fakeNICs is the SR-IOV manager of one cluster.
type fakeNICs struct {
	w       *world
	cluster string
	perNode int
	vfs     int
}

func (m fakeNICs) free() []*fakePF {
	var held = map[string]bool{}
	for _, pfs := range m.w.ledgers {
		for _, n := range pfs {
			held[n] = true
		}
	}
	var out []*fakePF
	for _, p := range m.w.pfs {
		if !held[p.name] && p.node == "" {
			out = append(out, p)
		}
	}
	return out
}

func (m fakeNICs) check(workers []string) error {
	if _, ok := m.w.ledgers[m.cluster]; ok {
		return fmt.Errorf("cluster %q already holds SR-IOV PFs", m.cluster)
	}
	if need, have := len(workers)*m.perNode, len(m.free()); have < need {
		return fmt.Errorf("%d SR-IOV PFs needed, %d free", need, have)
	}
	return nil
}

func (m fakeNICs) Check(ctx context.Context, workers []string) (*sriov.Plan, error) {
	m.w.mu.Lock()
	defer m.w.mu.Unlock()
	return &sriov.Plan{Workers: workers}, m.check(workers)
}

func (m fakeNICs) Up(ctx context.Context, nodes sriov.Nodes, workers []string) ([]sriov.Assignment, error) {
	m.w.mu.Lock()
	defer m.w.mu.Unlock()
	if err := m.check(workers); err != nil {
		return nil, err
	}
	free := m.free()
	var as []sriov.Assignment
	var names []string
	for i, wk := range workers {
		a := sriov.Assignment{Node: wk}
		for _, p := range free[i*m.perNode : (i+1)*m.perNode] {
			a.PFs = append(a.PFs, sriov.PF{Name: p.name})
			names = append(names, p.name)
		}
		as = append(as, a)
	}
	m.w.ledgers[m.cluster] = names
	for _, a := range as {
		for _, pf := range a.PFs {
			p := m.w.pf(pf.Name)
			p.node, p.vfs = a.Node, m.vfs
		}
	}
	if err := m.w.failing("nics up no rollback"); err != nil {
		return nil, fmt.Errorf("%w\nrolling back failed too; run cluster-down to give the PFs back", err)
	}
	if err := m.w.failing("nics up"); err != nil {
		m.giveBack(true)
		return nil, fmt.Errorf("%w (rolled back: every PF is back on the host)", err)
	}
	return as, nil
}

func (m fakeNICs) giveBack(vfs bool) error {
	for _, n := range m.w.ledgers[m.cluster] {
		p := m.w.pf(n)
		if _, ok := m.w.containers[p.node]; p.node != "" && !ok {
			return fmt.Errorf("1 of %d SR-IOV PFs are not back: %s: node %s is gone", len(m.w.ledgers[m.cluster]), n, p.node)
		}
		if vfs && p.vfs != p.origVF {
			if c, ok := m.w.containers[p.node]; ok && c.vm {
				return fmt.Errorf("PF %s: resetting the VF count: device busy (a VM in %s holds a VF)", n, p.node)
			}
		}
	}
	for _, n := range m.w.ledgers[m.cluster] {
		p := m.w.pf(n)
		p.node = ""
		if vfs {
			p.vfs = p.origVF
		}
	}
	if vfs {
		delete(m.w.ledgers, m.cluster)
	}
	return nil
}

func (m fakeNICs) ReturnNetdevs(ctx context.Context, nodes sriov.Nodes) error {
	m.w.mu.Lock()
	defer m.w.mu.Unlock()
	if err := m.w.failing("return netdevs"); err != nil {
		return err
	}
	return m.giveBack(false)
}

func (m fakeNICs) Return(ctx context.Context, nodes sriov.Nodes) error {
	m.w.mu.Lock()
	defer m.w.mu.Unlock()
	return m.giveBack(true)
}

func (m fakeNICs) Status(ctx context.Context, nodes sriov.Nodes) (*sriov.Status, error) {
	return &sriov.Status{Cluster: m.cluster}, nil
}

// fakeCluster is the cluster's API: a fake clientset with ready nodes and
// kube-system pods, and records of the component deployment.
func fakeClient(nodes []string) kubernetes.Interface {
	ready := []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	var objs []runtime.Object
	for _, n := range nodes {
		labels := map[string]string{}
		if strings.HasSuffix(n, "-control-plane") {
			labels["node-role.kubernetes.io/control-plane"] = ""
		}
		objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: labels}, Status: corev1.NodeStatus{Conditions: ready}})
	}
	podReady := corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	objs = append(objs,
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "coredns-1", Namespace: "kube-system", Labels: map[string]string{"k8s-app": "kube-dns"}}, Status: podReady},
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "standard"}},
	)
	return fake.NewClientset(objs...)
}

// harness is a provider wired to a world.
type harness struct {
	t        *testing.T
	w        *world
	p        *Provider
	log      *bytes.Buffer
	env      map[string]string
	deployed int
	// injectorDeployed counts the injector's deployments.
	injectorDeployed int
	waited           *components.Params // what the last component wait was given
}

func newHarness(t *testing.T, w *world, env map[string]string) *harness {
	t.Helper()
	h := &harness{t: t, w: w, log: &bytes.Buffer{}, env: map[string]string{
		config.EnvNumNodes:      "3",
		config.EnvConfigPath:    filepath.Join(t.TempDir(), "_ci-configs"),
		config.EnvSRIOVStateDir: filepath.Join(t.TempDir(), "sriov-state"),
		"KUBEVIRTCI_CACHE_DIR":  t.TempDir(),
	}}
	for k, v := range env {
		h.env[k] = v
	}
	c, err := config.Load(func(k string) string { return h.env[k] }, t.TempDir(), testDefaults)
	if err != nil {
		t.Fatal(err)
	}
	nodes := append([]string{c.ControlPlaneNode()}, c.WorkerNodes()...)
	p := &Provider{spec: testSpec(c.Provider), env: providers.Env{Config: c, Log: steplog.New(h.log, true), Getenv: func(k string) string { return h.env[k] }}}
	p.deps = deps{
		detect: func(ctx context.Context) (engine, string, kindcluster.Kind, error) {
			return fakeEngine{w}, "docker", fakeKind{w: w, nodes: nodes}, nil
		},
		nics: func() (nicManager, error) {
			return fakeNICs{w: w, cluster: c.ClusterName, perNode: c.PFCountPerNode, vfs: c.VFsCount}, nil
		},
		client: func(kubeconfig string) (kubernetes.Interface, *rest.Config, error) {
			if _, err := os.Stat(kubeconfig); err != nil {
				return nil, nil, err
			}
			return fakeClient(nodes), &rest.Config{}, nil
		},
		hiddenCgroups: func() ([]cgroupv1.Hierarchy, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			return append([]cgroupv1.Hierarchy(nil), w.cgroups...), nil
		},
		removeCgroups: func(hs []cgroupv1.Hierarchy) error {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.cgroups = nil
			return nil
		},
		unifiedCgroups: func() (bool, error) { return false, nil },
		lockCluster: func(ctx context.Context) (func(), error) {
			c := p.cfg()
			return sriov.LockCluster(ctx, c.SRIOVStateDir, c.ClusterName, time.Minute, func(holder string) {
				p.env.Log.Infof("Waiting for another cluster-up of cluster %s (%s)", c.ClusterName, holder)
			})
		},
		portFree:       func(int) error { return nil },
		systemdRunning: func(int) (bool, error) { return true, nil },
		handshake:      func(context.Context, string) error { return nil },
		apiReady:       func(context.Context, kubernetes.Interface) error { return nil },
		serving:        func(context.Context, int, time.Duration) error { return nil },
		fetchProxySetup: func(ctx context.Context, proxy string) ([]byte, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if err := w.failing("proxy"); err != nil {
				return nil, err
			}
			return []byte(w.proxySetup), nil
		},
		deploy: func(ctx context.Context, client kubernetes.Interface, rc *rest.Config, params components.Params) error {
			h.deployed++
			return nil
		},
		deployInjector: func(ctx context.Context, client kubernetes.Interface, rc *rest.Config, params components.Params) error {
			if params.InjectorImage != "" {
				h.injectorDeployed++
			}
			return nil
		},
		waitComponents: func(ctx context.Context, client kubernetes.Interface, params components.Params, o components.WaitOptions) error {
			h.waited = &params
			return ctx.Err()
		},
	}
	h.p = p
	return h
}

func (h *harness) configDir() string { return h.p.cfg().ConfigPath }

func (h *harness) snapshot() string { return h.w.snapshot(h.configDir()) }

var errInjected = errors.New("injected failure")

// testSpec stands in for the providers' descriptions (a test of this
// package cannot import them: they import it). "kind-sriov" has an injector
// and a kubelet that refuses cgroup v1; any other name is like
// kind-1.22-sriov.
func testSpec(name string) Spec {
	s := Spec{
		Name:       name,
		Kubernetes: "v1.22.2",
		Defaults: config.Defaults{
			NodeImage:              "quay.io/kubevirtci/kindest_node:v1.22.2",
			MultusImage:            images.Components122.Multus.UpstreamImage(),
			SRIOVCNIImage:          images.Components122.SRIOVCNI.UpstreamImage(),
			SRIOVDevicePluginImage: images.Components122.SRIOVDevicePlugin.UpstreamImage(),
		},
		Images:        images.V122,
		WorkerKubelet: map[string]string{"cpu-manager-policy": "static", "feature-gates": "CPUManager=true"},
	}
	if name == "kind-sriov" {
		s.Kubernetes = "v1.36.1"
		s.Defaults = config.Defaults{
			NodeImage:              "kindest/node:v1.36.1",
			MultusImage:            images.Components136.Multus.UpstreamImage(),
			SRIOVCNIImage:          images.Components136.SRIOVCNI.UpstreamImage(),
			SRIOVDevicePluginImage: images.Components136.SRIOVDevicePlugin.UpstreamImage(),
			InjectorImage:          images.Components136.Injector.UpstreamImage(),
		}
		s.Images = images.V136
		s.WorkerKubelet = map[string]string{"cpu-manager-policy": "static", "topology-manager-policy": "single-numa-node"}
		s.KubeletRefusesCgroupV1 = true
	}
	return s
}

func testDefaults(provider string, fromSource bool) (config.Defaults, error) {
	if provider != "kind-1.22-sriov" && provider != "kind-sriov" {
		return config.Defaults{}, fmt.Errorf("unknown provider")
	}
	return testSpec(provider).Defaults, nil
}
