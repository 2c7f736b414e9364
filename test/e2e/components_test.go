package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

// checkComponentsWork checks what the running components did on the nodes:
// multus wrote its configuration (wrapping flannel's) and binary on every
// node; sriov-cni copied its binary into the CNI bin folder of every
// SR-IOV worker and nowhere else; the device plugin read the provider's
// config.json and, on simulated PFs (whose VFs do not exist in the kernel's
// sysfs that the plugin reads), found no device and advertises nothing.
func checkComponentsWork(t *testing.T, c *cluster, sriovWorkers []string) {
	t.Helper()
	for _, n := range c.nodeNames() {
		conf := dockerT(t, "exec", n, "cat", "/etc/cni/net.d/00-multus.conf")
		var mc struct {
			Type      string `json:"type"`
			LogFile   string `json:"logFile"`
			Delegates []struct {
				Name string `json:"name"`
			} `json:"delegates"`
		}
		if err := json.Unmarshal([]byte(conf), &mc); err != nil {
			t.Errorf("%s: /etc/cni/net.d/00-multus.conf is not JSON: %v\n%s", n, err, conf)
		} else if mc.Type != "multus" || len(mc.Delegates) != 1 || mc.Delegates[0].Name != "cbr0" || mc.LogFile != "/var/log/multus.log" {
			t.Errorf("%s: 00-multus.conf: type %q, delegates %+v, logFile %q; want multus wrapping flannel's cbr0, logging to /var/log/multus.log", n, mc.Type, mc.Delegates, mc.LogFile)
		}
		if _, err := docker(context.Background(), "exec", n, "test", "-x", "/opt/cni/bin/multus"); err != nil {
			t.Errorf("%s: no /opt/cni/bin/multus: %v", n, err)
		}
		_, err := docker(context.Background(), "exec", n, "test", "-x", "/opt/cni/bin/sriov")
		if sriov := contains(sriovWorkers, n); sriov && err != nil {
			t.Errorf("SR-IOV worker %s: no /opt/cni/bin/sriov: %v", n, err)
		} else if !sriov && err == nil {
			t.Errorf("%s is no SR-IOV node but has /opt/cni/bin/sriov", n)
		}
	}

	cs := c.client()
	ctx := context.Background()
	cm, err := cs.CoreV1().ConfigMaps("sriov").Get(ctx, "sriovdp-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.TrimSpace(cm.Data["config.json"])
	pods, err := cs.CoreV1().Pods("sriov").List(ctx, metav1.ListOptions{LabelSelector: "app=sriovdp"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		logs, err := c.kubectl("logs", "-n", "sriov", p.Name)
		if err != nil {
			t.Errorf("logs of %s: %v", p.Name, err)
			continue
		}
		for _, want := range []string{
			"raw ResourceList: " + cfg,
			"no devices in device pool, skipping creating resource server for sriov_net",
			"All servers started.",
		} {
			if !strings.Contains(logs, want) {
				t.Errorf("device plugin %s on %s: log lacks %q\n%s", p.Name, p.Spec.NodeName, want, tail(logs, 30))
			}
		}
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		if q, ok := n.Status.Allocatable["kubevirt.io/sriov_net"]; ok && !q.IsZero() {
			t.Errorf("node %s: allocatable kubevirt.io/sriov_net %s on simulated PFs, want none", n.Name, q.String())
		}
	}
}

// secondaryNet is one NetworkAttachmentDefinition of the multus check: a
// macvlan network on the node's eth0 (the kind network's bridge joins the
// nodes) with a static address, one per pod so that they cannot clash.
type secondaryNet struct {
	name, node, pod, addr string
}

// checkSecondaryNetwork uses multus for real: two pods, one on each worker,
// each attached through a NetworkAttachmentDefinition to a macvlan network
// (the standard CNI plugins of the node image) with a static address. Each
// must get net1 with its address, and one must ping the other through it.
// image is a pullable image of the hello command (the synced one).
func checkSecondaryNetwork(t *testing.T, c *cluster, image string) {
	t.Helper()
	workers := c.workers()
	if len(workers) < 2 {
		t.Fatalf("the check needs two workers, the cluster has %v", workers)
	}
	nets := []secondaryNet{
		{"e2e-macvlan-a", workers[0], "e2e-net-a", "10.250.0.1/24"},
		{"e2e-macvlan-b", workers[1], "e2e-net-b", "10.250.0.2/24"},
	}
	ctx := context.Background()
	cs := c.client()
	nad := c.nads(t, "default")
	for _, n := range nets {
		conf := fmt.Sprintf(`{"cniVersion":"0.3.1","name":%q,"type":"macvlan","master":"eth0","mode":"bridge","ipam":{"type":"static","addresses":[{"address":%q}]}}`, n.name, n.addr)
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "k8s.cni.cncf.io/v1",
			"kind":       "NetworkAttachmentDefinition",
			"metadata":   map[string]any{"name": n.name, "namespace": "default"},
			"spec":       map[string]any{"config": conf},
		}}
		if _, err := nad.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("NetworkAttachmentDefinition %s: %v", n.name, err)
		}
		grace := int64(1)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name: n.pod, Namespace: "default",
				Labels:      map[string]string{"app": "e2e-net"},
				Annotations: map[string]string{"k8s.v1.cni.cncf.io/networks": n.name},
			},
			Spec: corev1.PodSpec{
				NodeSelector:                  map[string]string{"kubernetes.io/hostname": n.node},
				TerminationGracePeriodSeconds: &grace,
				Containers:                    []corev1.Container{{Name: "hello", Image: image}},
			},
		}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("pod %s: %v", n.pod, err)
		}
	}
	t.Cleanup(func() {
		for _, n := range nets {
			if err := cs.CoreV1().Pods("default").Delete(ctx, n.pod, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Logf("cleanup: pod %s: %v", n.pod, err)
			}
			if err := nad.Delete(ctx, n.name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Logf("cleanup: NetworkAttachmentDefinition %s: %v", n.name, err)
			}
		}
	})

	for _, n := range nets {
		var pod *corev1.Pod
		err := eventually(2*time.Minute, time.Second, func() (bool, error) {
			p, err := cs.CoreV1().Pods("default").Get(ctx, n.pod, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			pod = p
			for _, s := range p.Status.ContainerStatuses {
				if s.Ready {
					return true, nil
				}
			}
			return false, fmt.Errorf("pod %s: phase %s", n.pod, p.Status.Phase)
		})
		if err != nil {
			ev, _ := c.kubectl("get", "events", "-n", "default", "--field-selector", "involvedObject.name="+n.pod)
			t.Fatalf("%v\n%s", err, ev)
		}
		if pod.Spec.NodeName != n.node {
			t.Errorf("pod %s runs on %s, want %s", n.pod, pod.Spec.NodeName, n.node)
		}
		status := pod.Annotations["k8s.v1.cni.cncf.io/network-status"]
		var nets []struct {
			Name      string   `json:"name"`
			Interface string   `json:"interface"`
			IPs       []string `json:"ips"`
		}
		if err := json.Unmarshal([]byte(status), &nets); err != nil {
			t.Errorf("pod %s: network-status annotation %q: %v", n.pod, status, err)
		}
		found := false
		for _, s := range nets {
			found = found || (s.Name == "default/"+n.name && s.Interface == "net1" && len(s.IPs) == 1 && s.IPs[0]+"/24" == n.addr)
		}
		if !found {
			t.Errorf("pod %s: multus's network-status %s lacks net1 on default/%s with %s", n.pod, status, n.name, n.addr)
		}
		out, err := c.kubectl("exec", "-n", "default", n.pod, "--", "/hello", "addrs", "net1")
		if err != nil {
			t.Errorf("pod %s: addresses of net1: %v\n%s", n.pod, err, out)
		} else if !contains(strings.Fields(out), n.addr) {
			t.Errorf("pod %s: net1 has %q, want %s", n.pod, out, n.addr)
		}
		t.Logf("pod %s on %s: net1 %s", n.pod, pod.Spec.NodeName, strings.Join(strings.Fields(out), " "))
	}
	peer, _, _ := strings.Cut(nets[0].addr, "/")
	out, err := c.kubectl("exec", "-n", "default", nets[1].pod, "--", "/hello", "ping", peer)
	if err != nil {
		t.Errorf("pod %s on %s could not ping %s (pod %s on %s) over the secondary network: %v\n%s", nets[1].pod, nets[1].node, peer, nets[0].pod, nets[0].node, err, out)
	} else {
		t.Logf("%s -> %s over net1: %s", nets[1].pod, nets[0].pod, strings.TrimSpace(out))
	}
}

// nads is the cluster's NetworkAttachmentDefinitions in namespace ns.
func (c *cluster) nads(t *testing.T, ns string) dynamic.ResourceInterface {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return dyn.Resource(schema.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1", Resource: "network-attachment-definitions"}).Namespace(ns)
}
