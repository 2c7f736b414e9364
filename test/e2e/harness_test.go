package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/sriov"

	"k8s.io/apimachinery/pkg/util/wait"
)

// toolSettings are the environment variables the tool reads. The suite
// removes them (and make's V) from the environment it inherits, so that
// every cluster gets exactly the settings its test gives.
var toolSettings = []string{
	config.EnvProvider, config.EnvNumNodes, config.EnvClusterName, config.EnvNodeImage,
	config.EnvKindVersion, config.EnvKubectlPath, config.EnvConfigPath, config.EnvCRI,
	config.EnvEtcdInMemory, config.EnvRegistryImage, config.EnvHostPort,
	config.EnvPFCountPerNode, config.EnvPFBlacklist, config.EnvVFsCount, config.EnvSysfsRoot,
	config.EnvSRIOVStateDir, config.EnvMultusImage, config.EnvSRIOVCNIImage,
	config.EnvSRIOVDevicePluginImage, config.EnvSkipComponentWaits, config.EnvSkipAllocatableWait, config.EnvClusterWaitTimeout,
	config.EnvComponentWaitTimeout, config.EnvAllocatableWaitTimeout, config.EnvDockerPrefix,
	config.EnvDockerTag, config.EnvSyncSources, config.EnvSyncManifests,
	config.EnvInjectorImage, config.EnvIPFamily, config.EnvUseDRA, config.EnvSourceImages,
	config.EnvRegistryMirrors, config.EnvRegistryProxy,
	"V", "MAGEFILE_VERBOSE", "KUBECONFIG",
}

// provider is the provider of every cluster that names none: the default.
const provider = config.DefaultProvider

// kindSRIOV is the second provider (Kubernetes 1.36, with
// network-resources-injector).
const kindSRIOV = "kind-sriov"

// Time limits of the make targets.
const (
	upTimeout   = 20 * time.Minute
	downTimeout = 8 * time.Minute
	syncTimeout = 8 * time.Minute
)

// cluster is one cluster the test drives through make.
type cluster struct {
	t        *testing.T
	provider string // KUBEVIRT_PROVIDER
	name     string // CLUSTER_NAME as the tool sees it (default sriov)
	nodes    int
	env      map[string]string // settings given to every make target and kubectl.sh
	cfgPath  string            // KUBEVIRTCI_CONFIG_PATH
	stateDir string            // SRIOV_STATE_DIR (may be shared by clusters of a test)
	dir      string            // the checkout make runs in
	// upTarget and downTarget are the make targets that bring the
	// cluster up and down (cluster-up, cluster-down unless set).
	upTarget, downTarget string
	mu                   sync.Mutex
	isDown               bool // the last cluster-down succeeded
}

// clusterOpts are the settings of a cluster besides the ones every cluster
// of the suite gets.
type clusterOpts struct {
	// provider is KUBEVIRT_PROVIDER ("": the default, kind-1.22-sriov).
	// kind-sriov's clusters run the images built from source for it
	// (KUBEVIRTCI_SOURCE_IMAGES=true), not the suite's image settings.
	provider       string
	name           string // "" keeps CLUSTER_NAME unset (the default, sriov)
	nodes          int
	pfs            *pfSet
	stateDir       string
	pfCountPerNode int
	blacklist      string
	vfs            int
	extra          map[string]string
	// dir is the checkout to run make in (default: this one).
	dir string
	// defaults leaves every setting but extra (and name, nodes) unset, as
	// a user who sets nothing does: the files go to the checkout's own
	// _ci-configs/, the ledgers to the host-wide SR-IOV state directory,
	// PF_COUNT_PER_NODE is its default.
	defaults bool
	// upTarget and downTarget replace cluster-up and cluster-down.
	upTarget, downTarget string
}

// newCluster prepares a cluster (it does not bring it up) and registers a
// cleanup that runs `make cluster-down` unless a cluster-down already
// succeeded, and removes the leftovers by force if that fails.
func newCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	name := o.name
	if name == "" {
		name = config.DefaultClusterName
	}
	c := &cluster{
		t:          t,
		provider:   o.provider,
		name:       name,
		nodes:      o.nodes,
		cfgPath:    filepath.Join(t.TempDir(), "ci-configs"),
		stateDir:   o.stateDir,
		dir:        o.dir,
		upTarget:   o.upTarget,
		downTarget: o.downTarget,
		isDown:     true,
	}
	if c.dir == "" {
		c.dir = repoRoot
	}
	if c.provider == "" {
		c.provider = provider
	}
	if c.upTarget == "" {
		c.upTarget = "cluster-up"
	}
	if c.downTarget == "" {
		c.downTarget = "cluster-down"
	}
	if o.defaults {
		c.cfgPath = filepath.Join(c.dir, "_ci-configs")
		if name != config.DefaultClusterName {
			c.cfgPath = filepath.Join(c.cfgPath, name)
		}
		c.stateDir = sriov.DefaultStateDir
		c.env = map[string]string{}
		if o.nodes > 0 {
			c.env[config.EnvNumNodes] = fmt.Sprint(o.nodes)
		}
	} else {
		c.env = suiteSettings(o, c.cfgPath)
	}
	if o.name != "" {
		c.env[config.EnvClusterName] = o.name
	}
	// CI=true (our CI sets it) would point the nodes at kubevirtci CI's
	// registry proxy, which does not exist here: every cluster pulls
	// without it, unless its test sets REGISTRY_PROXY (to a stand-in, or
	// to "" for the default).
	c.env[config.EnvRegistryProxy] = config.RegistryProxyOff
	if o.provider != "" {
		c.env[config.EnvProvider] = o.provider
	}
	for k, v := range o.extra {
		c.env[k] = v
	}
	t.Cleanup(c.cleanup)
	return c
}

// suiteSettings are what every cluster of the suite gets unless it asks for
// the defaults.
func suiteSettings(o clusterOpts, cfgPath string) map[string]string {
	env := map[string]string{
		config.EnvProvider:               provider,
		config.EnvNumNodes:               fmt.Sprint(o.nodes),
		config.EnvConfigPath:             cfgPath,
		config.EnvNodeImage:              nodeImage,
		config.EnvRegistryImage:          registryImage,
		config.EnvCRI:                    "docker",
		config.EnvSysfsRoot:              o.pfs.root,
		config.EnvSRIOVStateDir:          o.stateDir,
		config.EnvMultusImage:            multusImage,
		config.EnvSRIOVCNIImage:          sriovCNIImage,
		config.EnvSRIOVDevicePluginImage: devicePluginImage,
		// The device plugin in a node reads the kernel's sysfs, where the
		// simulated PFs have no VF: nothing can become allocatable. Every
		// other component wait runs.
		config.EnvSkipAllocatableWait: "true",
		config.EnvClusterWaitTimeout:  "10m",
	}
	if o.provider != "" && o.provider != provider {
		// The images built from source for that provider, named by the
		// tool itself.
		for _, k := range []string{config.EnvNodeImage, config.EnvMultusImage, config.EnvSRIOVCNIImage, config.EnvSRIOVDevicePluginImage} {
			delete(env, k)
		}
		env[config.EnvSourceImages] = "true"
	}
	if o.pfCountPerNode > 0 {
		env[config.EnvPFCountPerNode] = fmt.Sprint(o.pfCountPerNode)
	}
	if o.blacklist != "" {
		env[config.EnvPFBlacklist] = o.blacklist
	}
	if o.vfs > 0 {
		env[config.EnvVFsCount] = fmt.Sprint(o.vfs)
	}
	return env
}

func (c *cluster) controlPlane() string { return c.name + "-control-plane" }

func (c *cluster) workers() []string {
	var w []string
	for i := 1; i < c.nodes; i++ {
		if i == 1 {
			w = append(w, c.name+"-worker")
		} else {
			w = append(w, fmt.Sprintf("%s-worker%d", c.name, i))
		}
	}
	return w
}

func (c *cluster) nodeNames() []string { return append([]string{c.controlPlane()}, c.workers()...) }
func (c *cluster) registry() string    { return registryName(c.name) }
func (c *cluster) stateFolder() string { return filepath.Join(c.cfgPath, c.provider) }

// k8sVersion is the Kubernetes version of the cluster's nodes.
func (c *cluster) k8sVersion() string {
	if c.provider == kindSRIOV {
		return images.Node136.Kubernetes
	}
	return images.Node122.Kubernetes
}
func (c *cluster) kubeconfig() string { return filepath.Join(c.stateFolder(), ".kubeconfig") }
func (c *cluster) ledgerPath() string { return filepath.Join(c.stateDir, c.name+".json") }

func (c *cluster) hostPort() int {
	if c.name == config.DefaultClusterName {
		return config.DefaultRegistryPort
	}
	return config.SecondRegistryPort
}

// cri is the container CLI the cluster runs on.
func (c *cluster) cri() string {
	if v := c.env[config.EnvCRI]; v != "" {
		return v
	}
	return "docker"
}

// environ is the environment of the tool for this cluster.
func (c *cluster) environ() []string { return environFor(c.env) }

// environFor is the suite's environment without any of the tool's settings,
// plus the given ones.
func environFor(settings map[string]string) []string {
	drop := map[string]bool{}
	for _, k := range toolSettings {
		drop[k] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+settings[k])
	}
	return env
}

// settings is the cluster's settings as a shell would show them.
func (c *cluster) settings() string {
	keys := make([]string, 0, len(c.env))
	for k := range c.env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s ", k, c.env[k])
	}
	return strings.TrimSpace(b.String())
}

// start starts `make <target>` for the cluster.
func (c *cluster) start(target string, onLine func(string)) *proc {
	c.t.Helper()
	if target == c.upTarget {
		// Only a cluster this test creates is torn down by its cleanup:
		// never one of the same name that something else runs.
		requireNoCluster(c.t, c.name)
		if err := c.recordUp(); err != nil {
			c.t.Fatalf("recording cluster %s for a later run's recovery: %v", c.name, err)
		}
		c.mu.Lock()
		c.isDown = false
		c.mu.Unlock()
	}
	return startProcIn(c.t, c.dir, c.name+" "+target, c.environ(), onLine, "make", "-C", c.dir, "--no-print-directory", target)
}

// run runs `make <target>` for the cluster and waits for it.
func (c *cluster) run(target string, timeout time.Duration) (string, time.Duration, error) {
	c.t.Helper()
	c.t.Logf("%s: make %s   (%s)", c.name, target, c.settings())
	p := c.start(target, nil)
	err := p.wait(timeout)
	if target == c.downTarget && err == nil {
		c.markDown()
	}
	return p.output(), p.duration(), err
}

// up runs `make cluster-up` and fails the test when it fails.
func (c *cluster) up() time.Duration {
	c.t.Helper()
	_, d, err := c.run(c.upTarget, upTimeout)
	if err != nil {
		c.t.Fatalf("%s: make %s failed after %s: %v", c.name, c.upTarget, d.Round(time.Second), err)
	}
	c.t.Logf("%s: make %s took %s", c.name, c.upTarget, d.Round(time.Second))
	return d
}

// down runs `make cluster-down` and fails the test when it fails.
func (c *cluster) down() time.Duration {
	c.t.Helper()
	_, d, err := c.run(c.downTarget, downTimeout)
	if err != nil {
		c.t.Fatalf("%s: make %s failed after %s: %v", c.name, c.downTarget, d.Round(time.Second), err)
	}
	c.t.Logf("%s: make %s took %s", c.name, c.downTarget, d.Round(time.Second))
	return d
}

// cleanup runs at the end of the test, also when it failed: cluster-down,
// and when that fails, the leftovers are removed by force so that the next
// test (and the host) start clean. The failure is reported.
func (c *cluster) cleanup() {
	c.mu.Lock()
	down := c.isDown
	c.mu.Unlock()
	if down {
		return
	}
	c.t.Logf("cleanup: make %s for %s", c.downTarget, c.name)
	if _, _, err := c.run(c.downTarget, downTimeout); err != nil {
		c.t.Errorf("cleanup: make cluster-down of %s failed: %v; removing its containers by force", c.name, err)
		c.forceRemove()
	}
}

// forceRemove removes the cluster's containers and files without the tool.
func (c *cluster) forceRemove() {
	if _, err := removeContainers(c.name); err != nil {
		c.t.Logf("cleanup: %v", err)
	}
	_ = os.RemoveAll(c.cfgPath)
	_ = os.Remove(c.ledgerPath())
	_ = os.Remove(recordPath(c.name))
}

// kubectl runs cluster-up/kubectl.sh as the README shows it.
func (c *cluster) kubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.dir, "cluster-up", "kubectl.sh"), args...)
	cmd.Dir = c.dir
	cmd.Env = c.environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("cluster-up/kubectl.sh %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// client is a clientset on the cluster's kubeconfig.
func (c *cluster) client() kubernetes.Interface {
	c.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig())
	if err != nil {
		c.t.Fatalf("kubeconfig %s: %v", c.kubeconfig(), err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return cs
}

// proc is a make process running in its own process group, as a command
// started from a terminal is: a signal can go to the whole group, as
// Ctrl-C does.
type proc struct {
	t       *testing.T
	label   string
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{} // closed when the process has exited
	readEOF chan struct{} // closed when every holder of the output pipe closed it
	took    time.Duration
	err     error

	mu       sync.Mutex
	out      strings.Builder
	tDone    bool // the test is over: stop logging through t
	waitOnce sync.Once
}

func startProc(t *testing.T, label string, env []string, onLine func(string), name string, args ...string) *proc {
	t.Helper()
	return startProcIn(t, repoRoot, label, env, onLine, name, args...)
}

// startProcIn is startProc in the folder dir.
func startProcIn(t *testing.T, dir, label string, env []string, onLine func(string), name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, label: label, done: make(chan struct{}), readEOF: make(chan struct{})}
	t.Cleanup(func() {
		p.mu.Lock()
		p.tDone = true
		p.mu.Unlock()
	})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(name, args...)
	p.cmd.Dir = dir
	p.cmd.Env = env
	// An *os.File as output: Wait does not wait for the pipe, which a
	// process left behind by make (after a signal) may still hold.
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		r.Close()
		w.Close()
		t.Fatalf("%s: %v", label, err)
	}
	w.Close()
	go func() {
		defer close(p.readEOF)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			if !p.tDone {
				t.Logf("[%s] %s", label, line)
			}
			p.mu.Unlock()
			if onLine != nil {
				onLine(line)
			}
		}
	}()
	go func() {
		err := p.cmd.Wait()
		p.took = time.Since(p.started)
		p.err = err
		close(p.done)
	}()
	return p
}

// wait waits for the process to exit (killing its whole group after
// timeout) and for its output to end; it returns the exit error.
func (p *proc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Errorf("%s: still running after %s; killing its process group", p.label, timeout)
		_ = p.signal(syscall.SIGKILL)
		<-p.done
	}
	if err := p.waitGroupGone(timeout); err != nil {
		p.t.Errorf("%s: %v", p.label, err)
	}
	select {
	case <-p.readEOF:
	case <-time.After(30 * time.Second):
		p.t.Errorf("%s: output still open 30s after the process group ended", p.label)
	}
	if p.err != nil {
		return fmt.Errorf("%w\n--- output of %s ---\n%s", p.err, p.label, p.tail(60))
	}
	return nil
}

// exited reports whether make has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process group.
func (p *proc) signal(sig syscall.Signal) error {
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// waitGroupGone waits (bounded, polling) until no process of the group is
// left: after a signal, the tool may outlive make while it cleans up.
func (p *proc) waitGroupGone(timeout time.Duration) error {
	err := eventually(timeout, 100*time.Millisecond, func() (bool, error) {
		return errors.Is(syscall.Kill(-p.cmd.Process.Pid, 0), syscall.ESRCH), nil
	})
	if err != nil {
		_ = p.signal(syscall.SIGKILL)
		return fmt.Errorf("processes of the group were still running %s after the command exited; killed them", timeout)
	}
	return nil
}

func (p *proc) duration() time.Duration { return p.took }

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// tail is the last n lines of the output.
func (p *proc) tail(n int) string { return tail(p.output(), n) }

// docker runs the docker CLI and returns its trimmed combined output.
func docker(ctx context.Context, args ...string) (string, error) {
	return engine(ctx, "docker", args...)
}

// engine runs a container CLI (docker or podman) and returns its trimmed
// output; the error names the command and carries the output.
func engine(ctx context.Context, cli string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("%s %s: %w: %s", cli, strings.Join(args, " "), err, s)
	}
	return s, nil
}

// dockerT is docker that fails the test on error.
func dockerT(t *testing.T, args ...string) string {
	t.Helper()
	out, err := docker(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// requireNoCluster fails the test when something of a cluster with one of
// these names already runs here, or a registry port is taken: the suite
// uses the default names and ports a user would.
func requireNoCluster(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		out, _ := docker(context.Background(), "ps", "-a", "--format", "{{.Names}}", "--filter", "label=io.x-k8s.kind.cluster="+n)
		if out != "" {
			t.Fatalf("a kind cluster named %s already exists on this host (%s); remove it first (CLUSTER_NAME=%s make cluster-down)", n, strings.ReplaceAll(out, "\n", ", "), n)
		}
		if out, err := docker(context.Background(), "inspect", "--format", "{{.Name}}", registryName(n)); err == nil {
			t.Fatalf("a container %s already exists on this host; remove it first", out)
		}
		port := config.SecondRegistryPort
		if n == config.DefaultClusterName {
			port = config.DefaultRegistryPort
		}
		if err := config.CheckPortFree(port); err != nil {
			t.Fatalf("registry port of cluster %s: %v", n, err)
		}
	}
}

// eventually polls cond every interval until it returns true or timeout
// passes; it returns cond's last error (or a timeout error).
func eventually(timeout, interval time.Duration, cond func() (bool, error)) error {
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), interval, timeout, true, func(context.Context) (bool, error) {
		ok, err := cond()
		last = err
		return ok, nil
	})
	if err == nil {
		return nil
	}
	if last == nil {
		last = errors.New("condition not met")
	}
	return fmt.Errorf("after %s: %w", timeout, last)
}
