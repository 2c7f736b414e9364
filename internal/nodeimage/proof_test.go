package nodeimage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
	kindlog "sigs.k8s.io/kind/pkg/log"

	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
	"github.com/kubevirt/kubevirtci-go/internal/kindcfg"
	"github.com/kubevirt/kubevirtci-go/internal/step"
	"github.com/kubevirt/kubevirtci-go/internal/testlevel"
)

const (
	proofCluster  = "kubevirtci-proof"
	proofRegistry = "kubevirtci-proof-registry"
	netcheckImage = "localhost/kubevirtci-netcheck:proof"
)

// EnvProofNode selects the node image TestProof builds and boots: "1.22"
// (the default, images.Node122) or "1.36" (images.Node136).
const EnvProofNode = "KUBEVIRTCI_PROOF_NODE"

// proofNode is the node EnvProofNode selects.
func proofNode(v string) (images.Node, error) {
	switch v {
	case "", "1.22":
		return images.Node122, nil
	case "1.36":
		return images.Node136, nil
	}
	return images.Node{}, fmt.Errorf("%s=%q: want 1.22 or 1.36", EnvProofNode, v)
}

// cgroupV1Host tells whether this host mounts cgroup v1 (a kind node, and
// its kubelet, see the host's hierarchy): cgroup v2 alone has
// cgroup.controllers at the root of /sys/fs/cgroup.
func cgroupV1Host() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err != nil
}

func atoi(s string) int {
	i, _ := strconv.Atoi(s)
	return i
}

// TestProof builds (or reuses) the node image that KUBEVIRTCI_PROOF_NODE
// selects (1.22 by default, or 1.36) and the registry image, boots a kind
// cluster of one control plane and two workers from the node image with the
// kind library, and checks that it works: nodes Ready at the node's
// Kubernetes version, every system pod Running and Ready (kube-proxy on
// every node, both CoreDNS replicas among them), DNS, pod to pod across
// workers, a privileged pod, and a push and a pull through the registry
// image. On a cgroup v1 host the cluster of a node of Kubernetes 1.35 or
// later gets the kubelet's failCgroupV1: false (kindcfg.KubeletCgroupV1Patch),
// as the provider passes it. Set KUBEVIRTCI_PROOF_KEEP=1 to keep the
// cluster for a look after a failure.
func TestProof(t *testing.T) {
	if testing.Short() {
		t.Skip("proof test: builds the images and boots a 3-node kind cluster; skipped under -short")
	}
	if os.Geteuid() != 0 {
		testlevel.Unavailable(t, "proof test: needs root (debootstrap and the docker engine); run as root after scripts/host-setup.sh")
	}
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		testlevel.Unavailable(t, "proof test: no docker engine answers (%v: %s); run scripts/host-setup.sh as root", err, strings.TrimSpace(string(out)))
	}
	if dl, ok := t.Deadline(); ok && time.Until(dl) < 40*time.Minute {
		t.Skipf("proof test: a cold build takes about 30 minutes; make e2e runs it (with go test -timeout 60m; time left here: %s)", time.Until(dl).Round(time.Second))
	}
	n, err := proofNode(os.Getenv(EnvProofNode))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node: Kubernetes %s (%s=%s)", n.Kubernetes, EnvProofNode, os.Getenv(EnvProofNode))
	ctx := context.Background()
	log := step.New(os.Stderr, testing.Verbose())
	opts := Options{CRI: "docker", Runner: cmdrun.Exec{Log: os.Stderr}, Log: log, Node: n}

	start := time.Now()
	node, err := BuildNode(ctx, opts)
	if err != nil {
		t.Fatalf("BuildNode: %v", err)
	}
	t.Logf("TIMING node image %s: %s", node, time.Since(start).Round(time.Second))
	start = time.Now()
	reg, err := BuildRegistry(ctx, opts)
	if err != nil {
		t.Fatalf("BuildRegistry: %v", err)
	}
	t.Logf("TIMING registry image %s: %s", reg, time.Since(start).Round(time.Second))

	netcheck := buildNetcheck(t, opts)

	t.Run("registry", func(t *testing.T) { proveRegistry(t, reg, netcheck) })

	provider := cluster.NewProvider(cluster.ProviderWithDocker(), cluster.ProviderWithLogger(testLogger{t}))
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	_ = provider.Delete(proofCluster, kubeconfig)
	kindConfig := &v1alpha4.Cluster{Nodes: []v1alpha4.Node{
		{Role: v1alpha4.ControlPlaneRole}, {Role: v1alpha4.WorkerRole}, {Role: v1alpha4.WorkerRole},
	}}
	if _, minor := k8sMajorMinor(n.Kubernetes); atoi(minor) >= 35 && cgroupV1Host() {
		t.Logf("cgroup v1 host: the kubelets get %q", kindcfg.KubeletCgroupV1Patch())
		kindConfig.KubeadmConfigPatches = append(kindConfig.KubeadmConfigPatches, kindcfg.KubeletCgroupV1Patch())
	}
	start = time.Now()
	err = provider.Create(proofCluster,
		cluster.CreateWithNodeImage(node),
		cluster.CreateWithV1Alpha4Config(kindConfig),
		cluster.CreateWithKubeconfigPath(kubeconfig),
		cluster.CreateWithWaitForReady(5*time.Minute),
		cluster.CreateWithDisplayUsage(false), cluster.CreateWithDisplaySalutation(false),
	)
	t.Cleanup(func() {
		if os.Getenv("KUBEVIRTCI_PROOF_KEEP") != "" {
			t.Logf("keeping cluster %s (kubeconfig %s)", proofCluster, kubeconfig)
			return
		}
		if err := provider.Delete(proofCluster, kubeconfig); err != nil {
			t.Errorf("deleting the cluster: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("kind create cluster: %v", err)
	}
	t.Logf("TIMING cluster create (kind, wait for control plane Ready): %s", time.Since(start).Round(time.Second))

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitNodesReady(t, ctx, cs, n.Kubernetes)
	waitSystemPods(t, ctx, cs)
	t.Logf("TIMING cluster Ready (all nodes and system pods): %s", time.Since(start).Round(time.Second))
	proveFlannelStart(t, ctx, cs, proofCluster+"-control-plane:6443")

	kindNodes, err := provider.ListNodes(proofCluster)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range kindNodes {
		f, err := os.Open(netcheck.tarball)
		if err != nil {
			t.Fatal(err)
		}
		err = nodeutils.LoadImageArchive(n, f)
		f.Close()
		if err != nil {
			t.Fatalf("loading %s into %s: %v", netcheckImage, n, err)
		}
	}
	proveNetwork(t, ctx, cs)
	provePrivileged(t, ctx, cs)
}

type netcheckBuild struct {
	image   v1.Image
	tarball string
}

// buildNetcheck builds images/netcheck into a small static image.
func buildNetcheck(t *testing.T, o Options) netcheckBuild {
	t.Helper()
	o, err := o.complete()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "netcheck")
	cmd := exec.Command("go", "build", "-o", bin, "./images/netcheck")
	cmd.Dir = o.SourceDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building netcheck: %v\n%s", err, out)
	}
	b := &builder{o: o, work: dir}
	layer, err := b.layerFromEntries("netcheck", append(staticBase(), entry{Path: "/netcheck", Src: bin, Mode: 0o755}))
	if err != nil {
		t.Fatal(err)
	}
	img, err := ociImage([]v1.Layer{layer}, v1.Config{Entrypoint: []string{"/netcheck"}})
	if err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(dir, "netcheck.tar")
	if err := writeImages(tarball, []builtImage{{Ref: netcheckImage, Image: img}}); err != nil {
		t.Fatal(err)
	}
	return netcheckBuild{image: img, tarball: tarball}
}

// proveRegistry runs the registry image, pushes an image to it and pulls it back.
func proveRegistry(t *testing.T, reg string, nc netcheckBuild) {
	run := func(args ...string) string {
		out, err := exec.Command("docker", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	_ = exec.Command("docker", "rm", "-f", "-v", proofRegistry).Run()
	run("run", "-d", "--name", proofRegistry, "-p", "127.0.0.1::5000", reg)
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", "-v", proofRegistry).Run() })
	addr := strings.Fields(run("port", proofRegistry, "5000/tcp"))[0]
	tag, err := name.NewTag(addr+"/proof/netcheck:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	// The registry needs a moment to listen.
	if err := poll(context.Background(), 30*time.Second, func() bool {
		_, err := remote.Catalog(context.Background(), tag.Registry)
		return err == nil
	}); err != nil {
		t.Fatalf("registry on %s does not answer: %v\n%s", addr, err, run("logs", proofRegistry))
	}
	if err := remote.Write(tag, nc.image); err != nil {
		t.Fatalf("push to %s: %v", tag, err)
	}
	pulled, err := remote.Image(tag)
	if err != nil {
		t.Fatalf("pull from %s: %v", tag, err)
	}
	want, _ := nc.image.Digest()
	got, err := pulled.Digest()
	if err != nil || got != want {
		t.Fatalf("pulled digest %v (%v), pushed %v", got, err, want)
	}
	layers, err := pulled.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("pulled layers %d (%v)", len(layers), err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatalf("pulling the layer: %v", err)
	}
	rc.Close()
	t.Logf("pushed and pulled %s (%s)", tag, got)
}

func waitNodesReady(t *testing.T, ctx context.Context, cs kubernetes.Interface, version string) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			if ctx.Err() == nil {
				last = err.Error()
			}
			return false, nil
		}
		var bad []string
		for _, n := range nodes.Items {
			ready := false
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready = true
				}
			}
			if !ready || n.Status.NodeInfo.KubeletVersion != version {
				bad = append(bad, fmt.Sprintf("%s (ready=%v, kubelet %s)", n.Name, ready, n.Status.NodeInfo.KubeletVersion))
			}
		}
		if len(nodes.Items) != 3 {
			bad = append(bad, fmt.Sprintf("%d nodes, want 3", len(nodes.Items)))
		}
		last = strings.Join(bad, "; ")
		return len(bad) == 0, nil
	})
	if err != nil {
		t.Fatalf("nodes not Ready at %s: %s", version, last)
	}
}

// waitSystemPods waits until every pod of the cluster's system namespaces
// (kube-system and flannel's) runs with every container ready.
func waitSystemPods(t *testing.T, ctx context.Context, cs kubernetes.Interface) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			if ctx.Err() == nil {
				last = err.Error()
			}
			return false, nil
		}
		var bad []string
		kubeSystem, proxies, dns := 0, 0, 0
		for _, p := range pods.Items {
			if p.Namespace == "kube-system" {
				kubeSystem++
				switch p.Labels["k8s-app"] {
				case "kube-proxy":
					proxies++
				case "kube-dns":
					dns++
				}
			}
			if p.Status.Phase != corev1.PodRunning {
				bad = append(bad, fmt.Sprintf("%s/%s %s%s", p.Namespace, p.Name, p.Status.Phase, waiting(p)))
				continue
			}
			for _, c := range p.Status.ContainerStatuses {
				if !c.Ready {
					bad = append(bad, fmt.Sprintf("%s/%s container %s not ready%s", p.Namespace, p.Name, c.Name, waiting(p)))
				}
			}
		}
		// coredns x2, etcd, apiserver, controller-manager, scheduler, kube-proxy x3
		if kubeSystem < 9 {
			bad = append(bad, fmt.Sprintf("%d kube-system pods, want at least 9", kubeSystem))
		}
		if proxies != 3 || dns != 2 {
			bad = append(bad, fmt.Sprintf("%d kube-proxy pods (want 3) and %d CoreDNS pods (want 2)", proxies, dns))
		}
		last = strings.Join(bad, "; ")
		return len(bad) == 0, nil
	})
	if err != nil {
		t.Fatalf("system pods not Running and Ready: %s", last)
	}
}

func waiting(p corev1.Pod) string {
	var w []string
	for _, c := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		if c.State.Waiting != nil {
			w = append(w, c.Name+": "+c.State.Waiting.Reason+" "+c.State.Waiting.Message)
		}
		if c.State.Terminated != nil && c.State.Terminated.ExitCode != 0 {
			w = append(w, fmt.Sprintf("%s: exited %d %s", c.Name, c.State.Terminated.ExitCode, c.State.Terminated.Reason))
		}
	}
	if len(w) == 0 {
		return ""
	}
	return " (" + strings.Join(w, ", ") + ")"
}

// proveFlannelStart: kind gave flannel the API server's address inside the
// cluster's network (the manifest's patch marker), and no flannel container
// restarted: it did not wait for kube-proxy to route the kubernetes
// Service, so none crash-looped while the nodes started. And no pod failed
// to get its network: flannel writes the node's CNI config (which makes
// the node Ready) only once it has its subnet lease, so no pod (CoreDNS
// first) is scheduled before its network works and then waits out the
// kubelet's back-off.
func proveFlannelStart(t *testing.T, ctx context.Context, cs kubernetes.Interface, endpoint string) {
	t.Helper()
	evs, err := cs.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedCreatePodSandBox"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		t.Errorf("%s %s/%s: %s (%d time(s)), want none", e.Reason, e.InvolvedObject.Namespace, e.InvolvedObject.Name, e.Message, e.Count)
	}
	pods, err := cs.CoreV1().Pods("kube-flannel").List(ctx, metav1.ListOptions{LabelSelector: "app=flannel"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 3 {
		t.Fatalf("%d flannel pods, want one per node", len(pods.Items))
	}
	for _, p := range pods.Items {
		got := ""
		for _, e := range p.Spec.Containers[0].Env {
			if e.Name == "CONTROL_PLANE_ENDPOINT" {
				got = e.Value
			}
		}
		if got != endpoint {
			t.Errorf("%s: CONTROL_PLANE_ENDPOINT %q, want %q (kind's patch of the default CNI manifest)", p.Name, got, endpoint)
		}
		for _, c := range p.Status.ContainerStatuses {
			if c.RestartCount != 0 {
				last := ""
				if e := c.LastTerminationState.Terminated; e != nil {
					last = fmt.Sprintf(" (last: exit %d, %s)", e.ExitCode, strings.TrimSpace(e.Message))
				}
				t.Errorf("%s on %s: container %s restarted %d time(s), want none%s", p.Name, p.Spec.NodeName, c.Name, c.RestartCount, last)
			}
		}
	}
}

// proveNetwork runs a server pod on the second worker and, on the first
// worker, pods that resolve its service name and reach it by pod IP and by
// service name.
func proveNetwork(t *testing.T, ctx context.Context, cs kubernetes.Interface) {
	const ns = "default"
	w1, w2 := proofCluster+"-worker", proofCluster+"-worker2"
	pod := func(name, node string, restart corev1.RestartPolicy, args ...string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
			Spec: corev1.PodSpec{
				NodeSelector:  map[string]string{"kubernetes.io/hostname": node},
				RestartPolicy: restart,
				Containers: []corev1.Container{{
					Name: "netcheck", Image: netcheckImage, ImagePullPolicy: corev1.PullNever, Args: args,
				}},
			},
		}
	}
	server, err := cs.CoreV1().Pods(ns).Create(ctx, pod("netcheck-server", w2, corev1.RestartPolicyAlways, "serve", ":8080"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "netcheck-server", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "netcheck-server"},
			Ports:    []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var serverIP string
	err = wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, server.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		serverIP = p.Status.PodIP
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("server pod on %s not ready", w2)
	}

	runOnce := func(name string, args ...string) string {
		t.Helper()
		return runToEnd(t, ctx, cs, pod(name, w1, corev1.RestartPolicyNever, args...))
	}

	fqdn := svc.Name + "." + ns + ".svc.cluster.local"
	if out := runOnce("netcheck-dns", "lookup", fqdn); !strings.Contains(out, svc.Spec.ClusterIP) {
		t.Errorf("DNS: %s resolved to %q, want %s", fqdn, out, svc.Spec.ClusterIP)
	} else {
		t.Logf("DNS: %s -> %s", fqdn, strings.TrimSpace(out))
	}
	if out := runOnce("netcheck-pod", "get", "http://"+serverIP+":8080/"); !strings.Contains(out, "hello from netcheck-server") {
		t.Errorf("pod on %s to pod %s on %s: got %q", w1, serverIP, w2, out)
	} else {
		t.Logf("pod to pod: %s -> %s: %s", w1, w2, strings.TrimSpace(out))
	}
	if out := runOnce("netcheck-svc", "get", "http://"+svc.Name+":8080/"); !strings.Contains(out, "hello from netcheck-server") {
		t.Errorf("pod to service %s: got %q", svc.Name, out)
	} else {
		t.Logf("pod to service by name: %s", strings.TrimSpace(out))
	}
}

// runToEnd creates pod p and waits until it succeeds, and returns its logs;
// it fails the test when the pod fails or does not end in 3 minutes.
func runToEnd(t *testing.T, ctx context.Context, cs kubernetes.Interface, p *corev1.Pod) string {
	t.Helper()
	if _, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var phase corev1.PodPhase
	got := p
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		q, err := cs.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		got, phase = q, q.Status.Phase
		return phase == corev1.PodSucceeded || phase == corev1.PodFailed, nil
	})
	logs, _ := cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil || phase != corev1.PodSucceeded {
		t.Fatalf("pod %s (%s) on %s: phase %s%s, logs:\n%s", p.Name, strings.Join(p.Spec.Containers[0].Args, " "),
			p.Spec.NodeSelector["kubernetes.io/hostname"], phase, waiting(*got), logs)
	}
	return string(logs)
}

// provePrivileged runs a privileged pod (every capability, as VM and CNI
// pods ask for) on a worker: on a host whose capability bounding set lacks
// some, only the runtime wrapper in the node makes it start.
func provePrivileged(t *testing.T, ctx context.Context, cs kubernetes.Interface) {
	privileged := true
	node := proofCluster + "-worker"
	out := runToEnd(t, ctx, cs, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "netcheck-privileged", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeSelector:  map[string]string{"kubernetes.io/hostname": node},
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "netcheck", Image: netcheckImage, ImagePullPolicy: corev1.PullNever,
				Args:            []string{"lookup", "kubernetes.default.svc.cluster.local"},
				SecurityContext: &corev1.SecurityContext{Privileged: &privileged},
			}},
		},
	})
	t.Logf("privileged pod on %s: %s", node, strings.TrimSpace(out))
}

// testLogger sends kind's messages to the test log.
type testLogger struct{ t *testing.T }

func (l testLogger) Warn(m string)                        { l.t.Log("kind: " + m) }
func (l testLogger) Warnf(f string, a ...interface{})     { l.t.Logf("kind: "+f, a...) }
func (l testLogger) Error(m string)                       { l.t.Log("kind: " + m) }
func (l testLogger) Errorf(f string, a ...interface{})    { l.t.Logf("kind: "+f, a...) }
func (l testLogger) V(v kindlog.Level) kindlog.InfoLogger { return testInfo{l.t, v <= 0} }

type testInfo struct {
	t  *testing.T
	on bool
}

func (i testInfo) Info(m string) {
	if i.on {
		i.t.Log("kind: " + m)
	}
}
func (i testInfo) Infof(f string, a ...interface{}) {
	if i.on {
		i.t.Logf("kind: "+f, a...)
	}
}
func (i testInfo) Enabled() bool { return i.on }
