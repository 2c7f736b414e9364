package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/preload"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// checkGetNodes runs `cluster-up/kubectl.sh get nodes` and checks what the
// seed README shows: every node Ready at v1.22.2, the control plane with
// roles control-plane,master and the workers with role worker.
func checkGetNodes(t *testing.T, c *cluster) {
	t.Helper()
	out, err := c.kubectl("get", "nodes")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("$ cluster-up/kubectl.sh get nodes\n%s", out)
	rows := table(out)
	if len(rows) == 0 || strings.Join(rows[0], " ") != "NAME STATUS ROLES AGE VERSION" {
		t.Fatalf("unexpected header in:\n%s", out)
	}
	got := map[string][]string{}
	for _, r := range rows[1:] {
		if len(r) != 5 {
			t.Errorf("row %v: want 5 columns", r)
			continue
		}
		got[r[0]] = r
	}
	if len(got) != c.nodes {
		t.Errorf("%d nodes listed, want %d", len(got), c.nodes)
	}
	for _, n := range c.nodeNames() {
		r, ok := got[n]
		if !ok {
			t.Errorf("node %s not listed", n)
			continue
		}
		role := "worker"
		if n == c.controlPlane() {
			// Kubernetes 1.24 dropped the master role.
			role = "control-plane,master"
			if c.provider == kindSRIOV {
				role = "control-plane"
			}
		}
		if r[1] != "Ready" || r[2] != role || r[4] != c.k8sVersion() {
			t.Errorf("node %s: %v, want STATUS Ready, ROLES %s, VERSION %s", n, r, role, c.k8sVersion())
		}
	}
}

// table splits kubectl's tabular output into rows of fields.
func table(out string) [][]string {
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			rows = append(rows, f)
		}
	}
	return rows
}

// componentListing is one of the seed README's pod listings.
type componentListing struct {
	namespace, label, namePrefix string
	onWorkersOnly                bool
}

var componentListings = []componentListing{
	{"kube-system", "app=multus", "kube-multus-ds-", false},
	{"sriov", "app=sriov-cni", "kube-sriov-cni-ds-amd64-", true},
	{"sriov", "app=sriovdp", "kube-sriov-device-plugin-amd64-", true},
}

// checkComponentPods checks the seed README's pod listings as it shows
// them: multus 1/1 Running on every node, the SR-IOV CNI and the device
// plugin 1/1 Running on exactly each SR-IOV worker, none restarted, none
// with a warning event that was not resolved.
func checkComponentPods(t *testing.T, c *cluster, sriovWorkers []string) {
	t.Helper()
	cs := c.client()
	ctx := context.Background()
	for _, l := range componentListings {
		want := c.nodeNames()
		if l.onWorkersOnly {
			want = sriovWorkers
		}
		want = sorted(want)
		// cluster-up waited for these pods: they must be Running now.
		list, err := cs.CoreV1().Pods(l.namespace).List(ctx, metav1.ListOptions{LabelSelector: l.label})
		if err != nil {
			t.Fatal(err)
		}
		out, kerr := c.kubectl("get", "pods", "-n", l.namespace, "-l", l.label, "-o", "wide")
		t.Logf("$ cluster-up/kubectl.sh get pods -n %s -l %s -o wide\n%s", l.namespace, l.label, out)
		if kerr != nil {
			t.Error(kerr)
		}
		var nodes []string
		for _, p := range list.Items {
			nodes = append(nodes, p.Spec.NodeName)
			if !strings.HasPrefix(p.Name, l.namePrefix) {
				t.Errorf("pod %s: name should start with %s", p.Name, l.namePrefix)
			}
			if p.Status.Phase != corev1.PodRunning {
				t.Errorf("pod %s on %s: phase %s, want Running", p.Name, p.Spec.NodeName, p.Status.Phase)
			}
			if len(p.Status.ContainerStatuses) != 1 {
				t.Errorf("pod %s: %d container statuses, want 1", p.Name, len(p.Status.ContainerStatuses))
			}
			for _, st := range p.Status.ContainerStatuses {
				if st.State.Running == nil || !st.Ready {
					t.Errorf("pod %s container %s: %s, ready=%v; want running and ready", p.Name, st.Name, describeState(st.State), st.Ready)
				}
				if st.RestartCount != 0 {
					t.Errorf("pod %s container %s restarted %d times (last: %s)", p.Name, st.Name, st.RestartCount, describeState(st.LastTerminationState))
				}
			}
			checkNoWarnings(t, c, p)
		}
		if got := sorted(nodes); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("pods -n %s -l %s run on %v, want exactly %v", l.namespace, l.label, got, want)
		}
		rows := table(out)
		if len(rows)-1 != len(want) {
			t.Errorf("listing has %d pod rows, want %d", len(rows)-1, len(want))
		}
		for _, r := range rows[1:] {
			if len(r) < 4 || r[1] != "1/1" || r[2] != "Running" || r[3] != "0" {
				t.Errorf("listing row %v: want READY 1/1, STATUS Running, RESTARTS 0 (as the README shows)", r)
			}
		}
	}
}

func describeState(s corev1.ContainerState) string {
	switch {
	case s.Waiting != nil:
		return "waiting: " + s.Waiting.Reason + ": " + s.Waiting.Message
	case s.Running != nil:
		return "running"
	case s.Terminated != nil:
		return fmt.Sprintf("terminated: %s (exit %d)", s.Terminated.Reason, s.Terminated.ExitCode)
	}
	return "none"
}

// checkNoWarnings fails when a running pod has a warning event other than
// a startup probe failing before the pod was Ready, or one the kubelet
// resolved itself before the container started: a FailedMount (such as
// "failed to sync configmap cache" on a busy node), retried by the
// kubelet. A FailedCreatePodSandBox is not excused: the node image's
// flannel writes a node's CNI config only once the node's pod network
// works, so no pod is scheduled to a node whose network would fail it.
func checkNoWarnings(t *testing.T, c *cluster, p corev1.Pod) {
	t.Helper()
	ev, err := c.client().CoreV1().Events(p.Namespace).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + p.Name,
	})
	if err != nil {
		t.Errorf("events of %s: %v", p.Name, err)
		return
	}
	var started, ready time.Time
	for _, st := range p.Status.ContainerStatuses {
		if st.State.Running != nil {
			started = st.State.Running.StartedAt.Time
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = c.LastTransitionTime.Time
		}
	}
	for _, e := range ev.Items {
		if e.Type != corev1.EventTypeWarning {
			continue
		}
		if e.Reason == "FailedMount" && !started.IsZero() && !eventTime(e).After(started) {
			t.Logf("pod %s/%s: warning %s before its container started (resolved since): %s", p.Namespace, p.Name, e.Reason, e.Message)
			continue
		}
		// The startup probes of multus and sriov-cni fail until the
		// entrypoint has written the configuration or binary: expected
		// before the pod is Ready, never after.
		if e.Reason == "Unhealthy" && strings.HasPrefix(e.Message, "Startup probe failed") && !ready.IsZero() && !eventTime(e).After(ready) {
			t.Logf("pod %s/%s: startup probe failed %d time(s) before the pod was Ready", p.Namespace, p.Name, e.Count)
			continue
		}
		t.Errorf("pod %s/%s: warning %s: %s", p.Namespace, p.Name, e.Reason, e.Message)
	}
}

// eventTime is when an event last happened.
func eventTime(e corev1.Event) time.Time {
	if !e.LastTimestamp.IsZero() {
		return e.LastTimestamp.Time
	}
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	return e.FirstTimestamp.Time
}

// checkNodes checks labels, taints and names of the nodes.
func checkNodes(t *testing.T, c *cluster, sriovWorkers []string) {
	t.Helper()
	list, err := c.client().CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range list.Items {
		if n.Name == "localhost" {
			t.Errorf("a node is named localhost")
		}
		if v := n.Labels["kubevirt.io/schedulable"]; v != "true" {
			t.Errorf("node %s: kubevirt.io/schedulable=%q, want true", n.Name, v)
		}
		_, worker := n.Labels["node-role.kubernetes.io/worker"]
		isCP := n.Name == c.controlPlane()
		if worker == isCP {
			t.Errorf("node %s: worker role label present=%v, want %v", n.Name, worker, !isCP)
		}
		wantSRIOV := contains(sriovWorkers, n.Name)
		if got := n.Labels["sriov_capable"] == "true"; got != wantSRIOV {
			t.Errorf("node %s: sriov_capable=true present=%v, want %v", n.Name, got, wantSRIOV)
		}
		for _, tn := range n.Spec.Taints {
			if tn.Effect == corev1.TaintEffectNoSchedule {
				t.Errorf("node %s: NoSchedule taint %s left (workloads must run on every node)", n.Name, tn.Key)
			}
		}
	}
}

// checkNoStandardStorageClass checks that kind's default storage class is gone.
func checkNoStandardStorageClass(t *testing.T, c *cluster) {
	t.Helper()
	_, err := c.client().StorageV1().StorageClasses().Get(context.Background(), "standard", metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("storage class standard: want NotFound, got %v", err)
	}
}

// checkEtcdOnTmpfs checks that etcd keeps its data on a tmpfs.
func checkEtcdOnTmpfs(t *testing.T, c *cluster) {
	t.Helper()
	const dir = "/tmp/kind-cluster-etcd"
	cp := c.controlPlane()
	if fs := dockerT(t, "exec", cp, "stat", "-f", "-c", "%T", dir); fs != "tmpfs" {
		t.Errorf("%s:%s is on %s, want tmpfs", cp, dir, fs)
	}
	if _, err := docker(context.Background(), "exec", cp, "test", "-d", dir+"/member"); err != nil {
		t.Errorf("no etcd member data under %s:%s: %v", cp, dir, err)
	}
	manifest := dockerT(t, "exec", cp, "cat", "/etc/kubernetes/manifests/etcd.yaml")
	if !strings.Contains(manifest, "--data-dir="+dir) {
		t.Errorf("etcd's manifest does not set --data-dir=%s", dir)
	}
}

// checkFiles checks the kubeconfig, kubectl and config-provider files, and
// uses the config-provider file as KubeVirt's scripts do: sourced in bash.
func checkFiles(t *testing.T, c *cluster) {
	t.Helper()
	dir := c.stateFolder()
	kc := filepath.Join(dir, ".kubeconfig")
	st, err := os.Stat(kc)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %o, want 600", kc, st.Mode().Perm())
	}
	cfg, err := clientcmd.LoadFromFile(kc)
	if err != nil {
		t.Fatal(err)
	}
	for name, cl := range cfg.Clusters {
		if !strings.HasPrefix(cl.Server, "https://127.0.0.1:") {
			t.Errorf("kubeconfig cluster %s: server %s, want https://127.0.0.1:<port>", name, cl.Server)
		}
	}
	kubectl := filepath.Join(dir, ".kubectl")
	if st, err := os.Stat(kubectl); err != nil || st.Mode().Perm()&0o111 == 0 {
		t.Errorf("%s: not an executable file (%v)", kubectl, err)
	}
	// Not --short: kubectl 1.28 dropped it; both print the version.
	if out, err := exec.Command(kubectl, "version", "--client").CombinedOutput(); err != nil || !strings.Contains(string(out), c.k8sVersion()) {
		t.Errorf("%s version --client: %v: %s (want %s)", kubectl, err, out, c.k8sVersion())
	}
	if _, err := os.Stat(filepath.Join(dir, "kind-config.yaml")); err != nil {
		t.Errorf("kind-config.yaml: %v", err)
	}
	cp := filepath.Join(dir, "config-provider-"+c.provider+".sh")
	script := `set -eu
source "$1"
printf '%s\n' "$master_ip" "$kubeconfig" "$kubectl" "$docker_prefix" "$manifest_docker_prefix"
"$kubectl" --kubeconfig "$kubeconfig" get nodes -o name`
	out, err := exec.Command("bash", "-c", script, "bash", cp).CombinedOutput()
	if err != nil {
		t.Fatalf("sourcing %s in bash and running its kubectl: %v\n%s", cp, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{"127.0.0.1", kc, kubectl,
		fmt.Sprintf("localhost:%d/kubevirt", c.hostPort()), "registry:5000/kubevirt"}
	if len(lines) < len(want) {
		t.Fatalf("config-provider output too short:\n%s", out)
	}
	for i, k := range []string{"master_ip", "kubeconfig", "kubectl", "docker_prefix", "manifest_docker_prefix"} {
		if lines[i] != want[i] {
			t.Errorf("config-provider %s=%q, want %q", k, lines[i], want[i])
		}
	}
	var nodes []string
	for _, l := range lines[len(want):] {
		nodes = append(nodes, strings.TrimPrefix(l, "node/"))
	}
	if strings.Join(sorted(nodes), ",") != strings.Join(sorted(c.nodeNames()), ",") {
		t.Errorf("$kubectl --kubeconfig $kubeconfig get nodes: %v, want %v", nodes, c.nodeNames())
	}
}

// checkRegistry checks the registry container: published on 127.0.0.1
// only, restarted always, on the kind network, answering on the host port;
// and the KEP-1755 ConfigMap.
func checkRegistry(t *testing.T, c *cluster) {
	t.Helper()
	reg := c.registry()
	port := dockerT(t, "port", reg)
	t.Logf("$ docker port %s\n%s", reg, port)
	wantLine := fmt.Sprintf("5000/tcp -> 127.0.0.1:%d", c.hostPort())
	if strings.TrimSpace(port) != wantLine {
		t.Errorf("docker port %s:\n%s\nwant exactly %q (published on 127.0.0.1 only)", reg, port, wantLine)
	}
	var inspect []struct {
		HostConfig struct {
			PortBindings  map[string][]struct{ HostIp, HostPort string }
			RestartPolicy struct{ Name string }
		}
		NetworkSettings struct {
			Networks map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(dockerT(t, "inspect", reg)), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("docker inspect %s: %v", reg, err)
	}
	for p, bs := range inspect[0].HostConfig.PortBindings {
		for _, b := range bs {
			if b.HostIp != "127.0.0.1" {
				t.Errorf("%s: port %s bound on %q, want 127.0.0.1", reg, p, b.HostIp)
			}
		}
	}
	if rp := inspect[0].HostConfig.RestartPolicy.Name; rp != "always" {
		t.Errorf("%s: restart policy %q, want always", reg, rp)
	}
	if _, ok := inspect[0].NetworkSettings.Networks["kind"]; !ok {
		t.Errorf("%s is not on the kind network", reg)
	}
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/v2/", c.hostPort()))
	if err != nil {
		t.Errorf("registry on localhost:%d: %v", c.hostPort(), err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET localhost:%d/v2/: %s", c.hostPort(), resp.Status)
		}
	}

	cm, err := c.client().CoreV1().ConfigMaps("kube-public").Get(context.Background(), "local-registry-hosting", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("KEP-1755 ConfigMap kube-public/local-registry-hosting: %v", err)
	}
	var hosting struct {
		Host                     string `json:"host"`
		HostFromContainerRuntime string `json:"hostFromContainerRuntime"`
		HostFromClusterNetwork   string `json:"hostFromClusterNetwork"`
		Help                     string `json:"help"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["localRegistryHosting.v1"]), &hosting); err != nil {
		t.Fatalf("localRegistryHosting.v1: %v\n%s", err, cm.Data["localRegistryHosting.v1"])
	}
	if hosting.Host != fmt.Sprintf("localhost:%d", c.hostPort()) {
		t.Errorf("localRegistryHosting.v1 host %q, want localhost:%d", hosting.Host, c.hostPort())
	}
	if hosting.HostFromContainerRuntime != "" && hosting.HostFromContainerRuntime != "registry:5000" {
		t.Errorf("localRegistryHosting.v1 hostFromContainerRuntime %q, want registry:5000", hosting.HostFromContainerRuntime)
	}
	if hosting.Help == "" {
		t.Errorf("localRegistryHosting.v1 has no help URL")
	}
}

// checkDevicePluginConfig checks that the device plugin's ConfigMap lists
// exactly the PFs moved into the nodes.
func checkDevicePluginConfig(t *testing.T, c *cluster, pfs []string) {
	t.Helper()
	cm, err := c.client().CoreV1().ConfigMaps("sriov").Get(context.Background(), "sriovdp-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ResourceList []struct {
			ResourceName string `json:"resourceName"`
			Selectors    struct {
				Drivers []string `json:"drivers"`
				PFNames []string `json:"pfNames"`
			} `json:"selectors"`
		} `json:"resourceList"`
	}
	if err := json.Unmarshal([]byte(cm.Data["config.json"]), &cfg); err != nil {
		t.Fatalf("sriovdp-config config.json: %v\n%s", err, cm.Data["config.json"])
	}
	if len(cfg.ResourceList) != 1 {
		t.Fatalf("sriovdp-config: %d resources, want 1:\n%s", len(cfg.ResourceList), cm.Data["config.json"])
	}
	r := cfg.ResourceList[0]
	if got, want := strings.Join(sorted(r.Selectors.PFNames), ","), strings.Join(sorted(pfs), ","); got != want {
		t.Errorf("sriovdp-config pfNames %s, want %s", got, want)
	}
	if strings.Join(r.Selectors.Drivers, ",") != "vfio-pci" || r.ResourceName != "sriov_net" {
		t.Errorf("sriovdp-config resource %s drivers %v, want sriov_net [vfio-pci]", r.ResourceName, r.Selectors.Drivers)
	}
}

// checkImagesUnpacked: every image in every node's containerd is unpacked,
// the ones no pod of that node runs too (the control plane's on a worker):
// the nodes' image carries them unpacked, so that no node unpacks while the
// cluster starts. (None of them has a layer that deletes files; one that
// had would stay packed: TestPreloadKeepsDeletions.)
func checkImagesUnpacked(t *testing.T, c *cluster) {
	t.Helper()
	for _, n := range c.nodeNames() {
		// Its table on stdout (after the header REF ... UNPACKED), and
		// containerd 2's warnings on a cgroup v1 host on stderr.
		out := dockerT(t, "exec", n, "ctr", "--namespace=k8s.io", "images", "check")
		var packed []string
		rows, table := 0, false
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && f[0] == "REF" {
				table = true
				continue
			}
			if !table || len(f) < 2 || strings.HasPrefix(f[0], "sha256:") || strings.HasPrefix(f[0], "time=") {
				continue
			}
			rows++
			if f[len(f)-1] != "true" {
				packed = append(packed, f[0])
			}
		}
		if rows == 0 {
			t.Errorf("%s: no image listed by ctr images check:\n%s", n, out)
		}
		if len(packed) > 0 {
			t.Errorf("%s: images not unpacked: %v", n, packed)
		}
	}
}

// layersOutsideVar prints, for a node's snapshots ($1) and the preload's
// layers ($2): how many snapshots' files are a directory on /var, how
// many are a link into $2, and how many of $2's layers no snapshot links
// to.
const layersOutsideVar = `real=0 links=0
for d in "$1"/*; do
	if [ -L "$d/fs" ]; then
		case $(readlink "$d/fs") in "$2"/*) links=$((links + 1)) ;; esac
	elif [ -d "$d/fs" ]; then
		real=$((real + 1))
	fi
done
unlinked=0
for l in "$2"/*; do
	[ -d "$l" ] || continue
	found=0
	for d in "$1"/*; do
		[ "$(readlink "$d/fs")" = "$l" ] && { found=1; break; }
	done
	[ $found = 1 ] || unlinked=$((unlinked + 1))
done
echo "real $real links $links unlinked $unlinked"`

// checkLayersOutsideVar: in every node, the unpacked layers of the
// preloaded images are in the nodes' image (preload.LayersDir), each
// linked from its snapshot in containerd's store on the node's /var, so
// that creating the node copied none of them into its /var volume. (The
// nodes' running containers have snapshots of their own on /var.)
func checkLayersOutsideVar(t *testing.T, c *cluster) {
	t.Helper()
	for _, n := range c.nodeNames() {
		out := dockerT(t, "exec", n, "sh", "-c", layersOutsideVar, "sh", preload.SnapshotsDir, preload.LayersDir)
		var real, links, unlinked int
		if _, err := fmt.Sscanf(out, "real %d links %d unlinked %d", &real, &links, &unlinked); err != nil {
			t.Errorf("%s: %q: %v", n, out, err)
			continue
		}
		if links == 0 || unlinked != 0 {
			t.Errorf("%s: %d snapshots link to a layer outside /var, %d of those layers unlinked (%d snapshots on /var); want every preloaded layer linked", n, links, unlinked, real)
		}
	}
}

// checkNodePrepared checks what the provider does to every SR-IOV node for
// VFIO: /dev/vfio/vfio mode 0666 and /sys mounted read-write.
func checkNodePrepared(t *testing.T, node string) {
	t.Helper()
	if mode := dockerT(t, "exec", node, "stat", "-c", "%a", "/dev/vfio/vfio"); mode != "666" {
		t.Errorf("%s: /dev/vfio/vfio mode %s, want 666", node, mode)
	}
	mounts := dockerT(t, "exec", node, "cat", "/proc/self/mounts")
	rw := false
	for _, l := range strings.Split(mounts, "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && f[1] == "/sys" {
			rw = strings.HasPrefix(f[3], "rw")
		}
	}
	if !rw {
		t.Errorf("%s: /sys is not mounted read-write", node)
	}
}

// checkGone checks that nothing of the cluster is left: no container, no
// endpoint on the kind network, no ledger, no file.
func checkGone(t *testing.T, c *cluster) {
	t.Helper()
	if out := dockerT(t, "ps", "-a", "--format", "{{.Names}}", "--filter", "label=io.x-k8s.kind.cluster="+c.name); out != "" {
		t.Errorf("containers of cluster %s left: %s", c.name, out)
	}
	for _, n := range append(c.nodeNames(), c.registry()) {
		if out, err := docker(context.Background(), "inspect", "--format", "{{.Name}}", n); err == nil {
			t.Errorf("container %s left", out)
		}
	}
	if out, err := docker(context.Background(), "network", "inspect", "kind", "--format", "{{range .Containers}}{{.Name}} {{end}}"); err == nil {
		for _, n := range strings.Fields(out) {
			if n == c.registry() || contains(c.nodeNames(), n) {
				t.Errorf("network kind still has an endpoint for %s", n)
			}
		}
	}
	if _, err := os.Stat(c.ledgerPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ledger %s left (%v)", c.ledgerPath(), err)
	}
	_ = filepath.WalkDir(c.cfgPath, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("file of the cluster left: %s", p)
		}
		return nil
	})
	if _, err := os.Stat(c.stateFolder()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left (%v)", c.stateFolder(), err)
	}
}

func sorted(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}

// checkUpAgain runs `make cluster-up` on the cluster that is up, the
// commonest mistake there is: it must say the cluster is up (with the
// status), fail, and change nothing: the workers keep their PFs and the
// ledger stays as it was.
func checkUpAgain(t *testing.T, c *cluster, pfs *pfSet, perNode int) {
	t.Helper()
	before, err := os.ReadFile(c.ledgerPath())
	if err != nil {
		t.Fatal(err)
	}
	held := pfs.checkHeld(t, c, perNode)
	identity := clusterIdentity(t, c)
	// Not c.run: that refuses to start a cluster-up on a running cluster.
	p := startProc(t, c.name+" cluster-up again", c.environ(), nil, "make", "-C", repoRoot, "--no-print-directory", "cluster-up")
	err = p.wait(upTimeout)
	out := p.output()
	if err == nil {
		t.Errorf("a second make cluster-up on the running cluster succeeded")
	}
	for _, want := range []string{"cluster " + c.name + " is already up; nothing was changed", "SR-IOV:"} {
		if !strings.Contains(out, want) {
			t.Errorf("second make cluster-up: output lacks %q:\n%s", want, tail(out, 30))
		}
	}
	if strings.Contains(out, "Returning SR-IOV PFs") {
		t.Errorf("second make cluster-up touched the PFs:\n%s", tail(out, 30))
	}
	after, err := os.ReadFile(c.ledgerPath())
	if err != nil || !bytes.Equal(before, after) {
		t.Errorf("the ledger changed (%v):\nbefore %s\nafter  %s", err, before, after)
	}
	if again := pfs.checkHeld(t, c, perNode); fmt.Sprint(again) != fmt.Sprint(held) {
		t.Errorf("PFs held before %v, after %v", held, again)
	}
	if again := clusterIdentity(t, c); again != identity {
		t.Errorf("the second make cluster-up replaced something:\nbefore:\n%s\nafter:\n%s", identity, again)
	}
}

// clusterIdentity is what a cluster-up that changes nothing keeps: each
// node's name, UID and creation time (in the API), each node container's
// ID and start time, and the registry container's ID, image and start time.
func clusterIdentity(t *testing.T, c *cluster) string {
	t.Helper()
	var b strings.Builder
	nodes, err := c.client().CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		fmt.Fprintf(&b, "node %s uid %s created %s\n", n.Name, n.UID, n.CreationTimestamp.UTC().Format(time.RFC3339))
	}
	for _, ct := range append(c.nodeNames(), c.registry()) {
		fmt.Fprintf(&b, "container %s\n", dockerT(t, "inspect", "--format", "{{.Name}} {{.Id}} {{.Image}} {{.State.StartedAt}} restarts={{.RestartCount}}", ct))
	}
	return b.String()
}

// syncUseAndDown ends a scenario: `make cluster-sync` of the image built
// for the run (runID), two pods on a multus secondary network made of it,
// then `make cluster-down`, nothing left and every PF back.
func syncUseAndDown(t *testing.T, c *cluster, pfs *pfSet, runID string) {
	t.Helper()
	var synced string
	t.Run("cluster-sync", func(t *testing.T) { synced = checkSync(t, c, runID) })
	t.Run("multus secondary network", func(t *testing.T) {
		if synced == "" {
			t.Skip("no synced image to run (the cluster-sync check failed)")
		}
		checkSecondaryNetwork(t, c, synced)
	})

	c.down()
	t.Run("nothing left", func(t *testing.T) { checkGone(t, c) })
	t.Run("PFs back", func(t *testing.T) { pfs.checkBack(t) })
}
