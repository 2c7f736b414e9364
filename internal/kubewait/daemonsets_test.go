package kubewait

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	sriovLabel   = map[string]string{"kubernetes.io/arch": "amd64", "sriov_capable": "true"}
	workerLabel  = map[string]string{"kubernetes.io/arch": "amd64"}
	dpSelector   = map[string]string{"name": "sriov-device-plugin"}
	masterTaint  = corev1.Taint{Key: "node-role.kubernetes.io/master", Effect: corev1.TaintEffectNoSchedule}
	controlPlane = node("sriov-control-plane", workerLabel, masterTaint)
)

func sriovNodes() []*corev1.Node {
	return []*corev1.Node{controlPlane, node("sriov-worker", sriovLabel), node("sriov-worker2", sriovLabel), node("sriov-worker3", workerLabel)}
}

func TestDaemonSetsAvailableWaitsForPodsOnTargetedNodes(t *testing.T) {
	ds := daemonSet("sriov", "kube-sriov-device-plugin-amd64", dpSelector, map[string]string{"sriov_capable": "true"})
	pa := ownedBy(pod("sriov", "dp-a", "sriov-worker", dpSelector, true), ds)
	pb := ownedBy(pulling(pod("sriov", "dp-b", "sriov-worker2", dpSelector, false), "ErrImagePull"), ds)
	f := newFake(dsStatus(ds, 2, 2, 1), pa, pb)
	for _, n := range sriovNodes() {
		_, err := f.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		must(t, err)
	}
	var seen []string
	// The image arrives: the pod becomes Ready, then the controller
	// counts it.
	change := f.changeWhenWaiting(t, 3, &seen, func() {
		if _, err := f.CoreV1().Pods("sriov").UpdateStatus(ctx, setReady(pb, true), metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
		if _, err := f.AppsV1().DaemonSets("sriov").UpdateStatus(ctx, dsStatus(ds, 2, 2, 2), metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
	})
	must(t, DaemonSetsAvailable(ctx, f, "sriov", Names(ds.Name), long, change))
	if len(seen) == 0 || !strings.Contains(seen[0], "pod sriov/dp-b on node sriov-worker2: container c waiting: ErrImagePull") {
		t.Errorf("progress %q does not name the pulling pod", seen)
	}
}

func TestDaemonSetsAvailableTimeoutMessage(t *testing.T) {
	ds := daemonSet("sriov", "kube-sriov-device-plugin-amd64", dpSelector, map[string]string{"sriov_capable": "true"})
	objs := []runtime0{dsStatus(ds, 2, 1, 0), ownedBy(pulling(pod("sriov", "kube-sriov-device-plugin-amd64-x", "sriov-worker", dpSelector, false), "ErrImagePull"), ds)}
	f := newFake(append(objs, nodesAsObjects(sriovNodes())...)...)
	err := DaemonSetsAvailable(ctx, f, "sriov", Names(ds.Name, "kube-sriov-cni-ds-amd64"), short)
	waitErr(t, err, lines(
		"timed out after 60ms waiting for daemonsets sriov/{kube-sriov-cni-ds-amd64,kube-sriov-device-plugin-amd64} to be available on the nodes they target:",
		"  - daemonset sriov/kube-sriov-cni-ds-amd64 not found",
		"  - daemonset sriov/kube-sriov-device-plugin-amd64: Ready on 0 of 2 targeted node(s) (sriov-worker, sriov-worker2) (status: desired 2, updated 1, available 0, misscheduled 0)",
		`  - pod sriov/kube-sriov-device-plugin-amd64-x on node sriov-worker: container c waiting: ErrImagePull (image registry.example/img:v1): rpc error: code = NotFound desc = failed to pull and unpack image "registry.example/img:v1": not found`,
		"  - daemonset sriov/kube-sriov-device-plugin-amd64: no pod on node sriov-worker2 yet",
	))
}

func TestDaemonSetsAvailableCountMismatch(t *testing.T) {
	// Both targeted nodes run a Ready pod, but the controller reports one
	// desired pod: not done, and the message says why.
	ds := daemonSet("sriov", "cni", map[string]string{"name": "sriov-cni"}, map[string]string{"sriov_capable": "true"})
	objs := []runtime0{
		dsStatus(ds, 1, 1, 1),
		ownedBy(pod("sriov", "cni-a", "sriov-worker", map[string]string{"name": "sriov-cni"}, true), ds),
		ownedBy(pod("sriov", "cni-b", "sriov-worker2", map[string]string{"name": "sriov-cni"}, true), ds),
	}
	f := newFake(append(objs, nodesAsObjects(sriovNodes())...)...)
	err := DaemonSetsAvailable(ctx, f, "sriov", Names("cni"), short)
	waitErr(t, err, lines(
		"timed out after 60ms waiting for daemonsets sriov/cni to be available on the nodes they target:",
		"  - daemonset sriov/cni: Ready on 2 of 2 targeted node(s) (sriov-worker, sriov-worker2) (status: desired 1, updated 1, available 1, misscheduled 0)",
		"  - daemonset sriov/cni: its controller wants 1 pod(s) but 2 node(s) match its node selector, affinity and tolerations",
	))
}

func TestDaemonSetsAvailableBySelectorAndGeneration(t *testing.T) {
	multus := daemonSet("kube-system", "kube-multus-ds", map[string]string{"name": "multus"}, nil)
	multus.Labels = map[string]string{"app": "multus"}
	multus.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	var objs []runtime0
	for _, n := range sriovNodes() {
		objs = append(objs, n, ownedBy(pod("kube-system", "multus-"+n.Name, n.Name, map[string]string{"name": "multus"}, true), multus))
	}
	stale := dsStatus(multus, 4, 4, 4)
	stale.Generation = 2
	f := newFake(append(objs, stale)...)
	err := DaemonSetsAvailable(ctx, f, "kube-system", Selector("app=multus"), short)
	waitErr(t, err, lines(
		`timed out after 60ms waiting for daemonsets with labels "app=multus" in namespace kube-system to be available on the nodes they target:`,
		"  - daemonset kube-system/kube-multus-ds: its controller has not yet seen generation 2 (observed 1)",
	))

	f = newFake(append(objs, dsStatus(multus, 4, 4, 4))...)
	must(t, DaemonSetsAvailable(ctx, f, "kube-system", Selector("app=multus"), short))
	must(t, DaemonSetsAvailable(ctx, f, "", Names("kube-system/kube-multus-ds"), short))
	waitErr(t, DaemonSetsAvailable(ctx, f, "", Selector("app=nothing"), short), lines(
		`timed out after 60ms waiting for daemonsets with labels "app=nothing" in all namespaces to be available on the nodes they target:`,
		`  - no daemonset matches labels "app=nothing"`,
	))
}

func TestDaemonSetsAvailableFailFast(t *testing.T) {
	ds := daemonSet("sriov", "dp", dpSelector, map[string]string{"sriov_capable": "true"})
	objs := []runtime0{
		dsStatus(ds, 2, 2, 0),
		ownedBy(pulling(pod("sriov", "dp-a", "sriov-worker", dpSelector, false), "ImagePullBackOff"), ds),
		ownedBy(pulling(pod("sriov", "dp-b", "sriov-worker2", dpSelector, false), "ErrImagePull"), ds),
	}
	f := newFake(append(objs, nodesAsObjects(sriovNodes())...)...)
	err := DaemonSetsAvailable(ctx, f, "sriov", Names("dp"), long, FailFast())
	if !errors.Is(err, ErrWontHeal) {
		t.Fatalf("error %v, want ErrWontHeal", err)
	}

	// A node without a pod yet is not an image problem: keep waiting.
	f = newFake(append(objs[:2], nodesAsObjects(sriovNodes())...)...)
	err = DaemonSetsAvailable(ctx, f, "sriov", Names("dp"), short, FailFast())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want a timeout", err)
	}
}

func TestShouldRunOn(t *testing.T) {
	tainted := node("n", map[string]string{"sriov_capable": "true", "zone": "a"}, corev1.Taint{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoSchedule})
	cordoned := node("n", nil, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
	netDown := node("n", nil, corev1.Taint{Key: corev1.TaintNodeNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule})
	preferNo := node("n", nil, corev1.Taint{Key: "k", Effect: corev1.TaintEffectPreferNoSchedule})
	affinity := func(terms ...corev1.NodeSelectorTerm) *corev1.Affinity {
		return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
	}
	expr := func(key string, op corev1.NodeSelectorOperator, vals ...string) corev1.NodeSelectorTerm {
		return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: vals}}}
	}
	for _, tc := range []struct {
		name string
		spec corev1.PodSpec
		node *corev1.Node
		want bool
	}{
		{"untolerated taint", corev1.PodSpec{}, tainted, false},
		{"tolerated taint", corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "x"}}}, tainted, true},
		{"selector matches", corev1.PodSpec{NodeSelector: map[string]string{"sriov_capable": "true"}, Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}}, tainted, true},
		{"selector does not match", corev1.PodSpec{NodeSelector: map[string]string{"sriov_capable": "false"}}, cordoned, false},
		{"cordoned node: the controller tolerates unschedulable", corev1.PodSpec{}, cordoned, true},
		{"network unavailable without host network", corev1.PodSpec{}, netDown, false},
		{"network unavailable with host network", corev1.PodSpec{HostNetwork: true}, netDown, true},
		{"PreferNoSchedule does not exclude", corev1.PodSpec{}, preferNo, true},
		{"node name", corev1.PodSpec{NodeName: "other"}, preferNo, false},
		{"affinity In", corev1.PodSpec{Affinity: affinity(expr("zone", corev1.NodeSelectorOpIn, "a")), Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}}, tainted, true},
		{"affinity NotIn", corev1.PodSpec{Affinity: affinity(expr("zone", corev1.NodeSelectorOpNotIn, "a")), Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}}, tainted, false},
		{"affinity terms are ORed", corev1.PodSpec{Affinity: affinity(expr("zone", corev1.NodeSelectorOpIn, "b"), expr("zone", corev1.NodeSelectorOpExists)), Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}}, tainted, true},
		{"affinity field", corev1.PodSpec{Affinity: affinity(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n"}}}})}, preferNo, true},
		{"empty term matches nothing", corev1.PodSpec{Affinity: affinity(corev1.NodeSelectorTerm{})}, preferNo, false},
	} {
		if got := shouldRunOn(&tc.spec, tc.node); got != tc.want {
			t.Errorf("%s: shouldRunOn = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNodeAllocatable(t *testing.T) {
	const res = "kubevirt.io/sriov_net"
	w1 := node("sriov-worker", sriovLabel)
	w2 := withAllocatable(node("sriov-worker2", sriovLabel), res, 12)
	f := newFake(w1, w2)
	want := map[string]int64{"sriov-worker": 6, "sriov-worker2": 6, "sriov-worker3": 6}
	err := NodeAllocatable(ctx, f, want, res, short)
	waitErr(t, err, lines(
		"timed out after 60ms waiting for allocatable kubevirt.io/sriov_net on node(s) {sriov-worker,sriov-worker2,sriov-worker3}:",
		"  - node sriov-worker: allocatable kubevirt.io/sriov_net is 0, want 6 (not advertised: is the device plugin running on this node?)",
		"  - node sriov-worker2: allocatable kubevirt.io/sriov_net is 12, want 6",
		"  - node sriov-worker3: not found",
	))

	f = newFake(w1, w2)
	want = map[string]int64{"sriov-worker": 6, "sriov-worker2": 12}
	must(t, NodeAllocatable(ctx, f, want, res, long, f.changeWhenWaiting(t, 1, nil, func() {
		if _, err := f.CoreV1().Nodes().UpdateStatus(ctx, withAllocatable(w1, res, 6), metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
	})))
	must(t, NodeAllocatable(ctx, f, nil, res, short))
	if err := NodeAllocatable(ctx, f, want, "", short); err == nil {
		t.Error("empty resource accepted")
	}
}

// With FailFast, a node short of its allocatable count whose device plugin
// pod cannot start (its image does not exist) ends the wait at once,
// naming both; without the stuck pod, the wait goes on.
func TestNodeAllocatableFailFast(t *testing.T) {
	const res = "kubevirt.io/sriov_net"
	w1 := node("sriov-worker", sriovLabel)
	dp := pulling(pod("sriov", "sriovdp-x", "sriov-worker", dpSelector, false), "ErrImagePull")
	dp.Status.ContainerStatuses[0].State.Waiting.Message = `failed to pull and unpack image "registry.example/img:v1": not found`
	want := map[string]int64{"sriov-worker": 6}
	start := time.Now()
	err := NodeAllocatable(ctx, newFake(w1, dp), want, res, long, FailFast())
	if !errors.Is(err, ErrWontHeal) || time.Since(start) > 3*time.Second {
		t.Fatalf("after %s: %v; want ErrWontHeal at once", time.Since(start), err)
	}
	if want := "node sriov-worker: allocatable kubevirt.io/sriov_net is 0, want 6 (not advertised: is the device plugin running on this node?); on it, pod sriov/sriovdp-x on node sriov-worker: container c waiting: ErrImagePull"; !strings.Contains(err.Error(), want) {
		t.Errorf("the error lacks %q:\n%s", want, err)
	}
	if err := NodeAllocatable(ctx, newFake(w1), want, res, short, FailFast()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("no stuck pod: %v, want a timeout", err)
	}
}

// A node labelled a moment ago is not yet in the DaemonSet controller's
// count: DaemonSetPodsCreated still waits for its pod.
func TestDaemonSetPodsCreatedCountsNodesTheControllerHasNotSeen(t *testing.T) {
	ds := daemonSet("sriov", "kube-sriov-device-plugin-amd64", dpSelector, map[string]string{"sriov_capable": "true"})
	stale := dsStatus(ds, 1, 1, 1) // sriov-worker2's label not counted yet
	pa := ownedBy(pod("sriov", "dp-a", "sriov-worker", dpSelector, false), ds)
	objs := append([]runtime0{stale, pa}, nodesAsObjects(sriovNodes())...)
	err := DaemonSetPodsCreated(ctx, newFake(objs...), []string{"sriov/" + ds.Name}, short)
	waitErr(t, err, lines(
		"timed out after 60ms waiting for the pods of daemonsets sriov/kube-sriov-device-plugin-amd64 to be created:",
		"  - daemonset sriov/kube-sriov-device-plugin-amd64: 1 of 2 pod(s) created",
	))

	pb := ownedBy(pod("sriov", "dp-b", "sriov-worker2", dpSelector, false), ds)
	must(t, DaemonSetPodsCreated(ctx, newFake(append(objs, pb)...), []string{"sriov/" + ds.Name}, short))
}
