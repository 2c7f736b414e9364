package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/config"
)

// TestScenarioKindSRIOV brings up the second provider, kind-sriov
// (Kubernetes 1.36, sriov-cni v2.9.0, the device plugin v3.9.0 and
// network-resources-injector), with the images built from source for it,
// on a 3-node cluster with one PF per worker, and checks what a user of it
// relies on: the README's listings, the PFs in the workers, the injector
// adding the resource a NetworkAttachmentDefinition names to a pod that
// only names the network, a multus secondary network carrying traffic, a
// second cluster-up changing nothing, an image whose layers delete files
// preloaded into its node image as built; then the PFs back with their name,
// MAC, MTU and state, and nothing left. It runs as kubevirtci's CI does,
// CI=true, with the registry proxy replaced by a stand-in (REGISTRY_PROXY).
func TestScenarioKindSRIOV(t *testing.T) {
	requireE2E(t)
	requireNoCluster(t, "sriov")
	pfs := newPFSet(t, "e2ekpf", 0xa6, 2)
	proxy := startProxyStandIn(t)
	c := newCluster(t, clusterOpts{
		provider: kindSRIOV,
		nodes:    3,
		pfs:      pfs,
		stateDir: filepath.Join(t.TempDir(), "sriov-state"),
		extra:    map[string]string{"CI": "true", config.EnvRegistryProxy: proxy.addr},
	})
	runID := buildHelloImage(t)
	t.Run("preload keeps deletions", func(t *testing.T) { checkPreloadKeepsDeletions(t, images.Node136.Image()) })

	c.up()

	t.Run("PFs", func(t *testing.T) {
		byNode := pfs.checkHeld(t, c, 1)
		for _, w := range c.workers() {
			if len(byNode[w]) != 1 {
				t.Errorf("%s holds %v, want one PF", w, byNode[w])
			}
		}
	})
	t.Run("CI registry proxy", func(t *testing.T) { checkProxied(t, c, proxy) })
	t.Run("README get nodes", func(t *testing.T) { checkGetNodes(t, c) })
	t.Run("README component pods", func(t *testing.T) { checkComponentPods(t, c, c.workers()) })
	t.Run("images unpacked", func(t *testing.T) { checkImagesUnpacked(t, c) })
	t.Run("layers outside /var", func(t *testing.T) { checkLayersOutsideVar(t, c) })
	t.Run("injector running", func(t *testing.T) { checkInjectorRunning(t, c) })
	t.Run("injector at work", func(t *testing.T) { checkInjectorWorks(t, c) })
	t.Run("files", func(t *testing.T) { checkFiles(t, c) })
	t.Run("cluster-up again", func(t *testing.T) { checkUpAgain(t, c, pfs, 1) })
	syncUseAndDown(t, c, pfs, runID)
}

// checkInjectorRunning: network-resources-injector's Deployment has rolled
// out, its pods are Ready and never restarted, and its webhook is
// registered.
func checkInjectorRunning(t *testing.T, c *cluster) {
	t.Helper()
	ctx := context.Background()
	cs := c.client()
	out, err := c.kubectl("get", "deployments,pods", "-n", "kube-system", "-l", "app=network-resources-injector", "-o", "wide")
	t.Logf("$ cluster-up/kubectl.sh get deployments,pods -n kube-system -l app=network-resources-injector -o wide\n%s", out)
	if err != nil {
		t.Error(err)
	}
	pods, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "app=network-resources-injector"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) == 0 {
		t.Fatal("no network-resources-injector pod in kube-system (label app=network-resources-injector)")
	}
	for _, p := range pods.Items {
		for _, st := range p.Status.ContainerStatuses {
			if st.State.Running == nil || !st.Ready || st.RestartCount != 0 {
				t.Errorf("injector pod %s: %s, ready=%v, %d restarts; want running, ready, none", p.Name, describeState(st.State), st.Ready, st.RestartCount)
			}
		}
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "network-resources-injector-mutating-config", metav1.GetOptions{}); err != nil {
		t.Errorf("the injector's webhook is not registered: %v", err)
	}
}

// checkInjectorWorks creates a NetworkAttachmentDefinition whose
// k8s.v1.cni.cncf.io/resourceName is kubevirt.io/sriov_net and a pod that
// only names it: the pod the API server stores must request (and be limited
// to) one kubevirt.io/sriov_net, put there by the injector. The pod is not
// run (simulated PFs have no allocatable VF); admission is what counts.
func checkInjectorWorks(t *testing.T, c *cluster) {
	t.Helper()
	ctx := context.Background()
	cs := c.client()
	const ns, netName, podName, res = "default", "e2e-sriov-net", "e2e-injected", "kubevirt.io/sriov_net"
	nad := c.nads(t, ns)
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "k8s.cni.cncf.io/v1",
		"kind":       "NetworkAttachmentDefinition",
		"metadata": map[string]any{"name": netName, "namespace": ns,
			"annotations": map[string]any{"k8s.v1.cni.cncf.io/resourceName": res}},
		"spec": map[string]any{"config": `{"cniVersion":"0.3.1","name":"` + netName + `","type":"sriov","ipam":{}}`},
	}}
	if _, err := nad.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("NetworkAttachmentDefinition %s: %v", netName, err)
	}
	grace := int64(0)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podName, Namespace: ns,
			Annotations: map[string]string{"k8s.v1.cni.cncf.io/networks": netName}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers:                    []corev1.Container{{Name: "c", Image: "registry:5000/none:latest"}},
		},
	}
	t.Cleanup(func() {
		if err := cs.CoreV1().Pods(ns).Delete(ctx, podName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Logf("cleanup: pod %s: %v", podName, err)
		}
		if err := nad.Delete(ctx, netName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Logf("cleanup: NetworkAttachmentDefinition %s: %v", netName, err)
		}
	})
	// The injector reads NetworkAttachmentDefinitions through the API;
	// a just-created one may take a moment to be seen.
	var got *corev1.Pod
	err := eventually(time.Minute, time.Second, func() (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		if q, ok := p.Spec.Containers[0].Resources.Requests[res]; ok && q.Value() == 1 {
			got = p
			return true, nil
		}
		_ = cs.CoreV1().Pods(ns).Delete(ctx, podName, metav1.DeleteOptions{})
		_ = eventually(30*time.Second, 200*time.Millisecond, func() (bool, error) {
			_, err := cs.CoreV1().Pods(ns).Get(ctx, podName, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		return false, nil
	})
	if err != nil || got == nil {
		logs, _ := c.kubectl("logs", "-n", "kube-system", "-l", "app=network-resources-injector", "--tail=30")
		t.Fatalf("pod %s naming %s was admitted without a %s request (%v); injector's log:\n%s", podName, netName, res, err, logs)
	}
	if q, ok := got.Spec.Containers[0].Resources.Limits[res]; !ok || q.Value() != 1 {
		t.Errorf("pod %s: limits %v, want %s: 1", podName, got.Spec.Containers[0].Resources.Limits, res)
	}
	if !strings.Contains(got.Annotations["k8s.v1.cni.cncf.io/networks"], netName) {
		t.Errorf("pod %s lost its networks annotation: %v", podName, got.Annotations)
	}
}
