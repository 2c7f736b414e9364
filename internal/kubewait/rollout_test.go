package kubewait

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func ref(kind, ns, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("apps/v1")
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

func int32p(i int32) *int32 { return &i }

var virtLabels = map[string]string{"kubevirt.io": "virt-operator"}

func deployment(replicas, updated, available, total int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kubevirt", Name: "virt-operator", Generation: 3},
		Spec: appsv1.DeploymentSpec{
			Replicas: int32p(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: virtLabels},
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: total, UpdatedReplicas: updated, AvailableReplicas: available, ReadyReplicas: available},
	}
}

func statefulSet(replicas, ready int32, current, update string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "db", Generation: 1},
		Spec: appsv1.StatefulSetSpec{
			Replicas:       int32p(replicas),
			Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
		},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 1, Replicas: replicas, ReadyReplicas: ready, UpdatedReplicas: ready, CurrentRevision: current, UpdateRevision: update},
	}
}

func TestRolloutDeployment(t *testing.T) {
	objs := []*unstructured.Unstructured{
		ref("Deployment", "kubevirt", "virt-operator"),
		{Object: map[string]interface{}{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]interface{}{"name": "ignored"}}},
	}
	f := newFake(deployment(2, 2, 1, 3), pulling(pod("kubevirt", "virt-operator-new", "sriov-worker", virtLabels, false), "ErrImagePull"),
		pod("kubevirt", "virt-operator-old", "sriov-worker2", virtLabels, true))
	err := Rollout(ctx, f, objs, short)
	waitErr(t, err, lines(
		"timed out after 60ms waiting for rollout of Deployment kubevirt/virt-operator:",
		"  - deployment kubevirt/virt-operator: 1 old replicas pending termination",
		`  - pod kubevirt/virt-operator-new on node sriov-worker: container c waiting: ErrImagePull (image registry.example/img:v1): rpc error: code = NotFound desc = failed to pull and unpack image "registry.example/img:v1": not found`,
	))

	f = newFake(deployment(2, 2, 1, 3))
	must(t, Rollout(ctx, f, objs, long, f.changeWhenWaiting(t, 2, nil, func() {
		if _, err := f.AppsV1().Deployments("kubevirt").UpdateStatus(ctx, deployment(2, 2, 2, 2), metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
	})))
}

func TestRolloutStatefulSetAndDaemonSet(t *testing.T) {
	objs := []*unstructured.Unstructured{ref("StatefulSet", "db", "db"), ref("DaemonSet", "sriov", "cni")}
	cniSel := map[string]string{"name": "sriov-cni"}
	ds := daemonSet("sriov", "cni", cniSel, map[string]string{"sriov_capable": "true"})
	base := []runtime0{
		dsStatus(ds, 2, 2, 2),
		ownedBy(pod("sriov", "cni-a", "sriov-worker", cniSel, true), ds),
		ownedBy(pod("sriov", "cni-b", "sriov-worker2", cniSel, true), ds),
	}
	base = append(base, nodesAsObjects(sriovNodes())...)

	f := newFake(append(base, statefulSet(2, 2, "db-1", "db-2"))...)
	waitErr(t, Rollout(ctx, f, objs, short), lines(
		"timed out after 60ms waiting for rollout of StatefulSet db/db, DaemonSet sriov/cni:",
		"  - statefulset db/db: 2 of 2 replicas at update revision db-2",
		"  - statefulset db/db: waiting for its controller to create or update pods",
	))

	f = newFake(append(base, statefulSet(2, 1, "db-2", "db-2"))...)
	must(t, Rollout(ctx, f, objs, long, f.changeWhenWaiting(t, 5, nil, func() {
		if _, err := f.AppsV1().StatefulSets("db").UpdateStatus(ctx, statefulSet(2, 2, "db-2", "db-2"), metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
	})))
}

func TestRolloutNothingToWaitFor(t *testing.T) {
	must(t, Rollout(ctx, newFake(), nil, short))
	err := Rollout(ctx, newFake(), []*unstructured.Unstructured{ref("Deployment", "", "x")}, short)
	if err == nil || !strings.Contains(err.Error(), "rollout of Deployment x: the object has no metadata.namespace") {
		t.Fatalf("error %v", err)
	}
	waitErr(t, Rollout(ctx, newFake(), []*unstructured.Unstructured{ref("Deployment", "a", "x")}, short), lines(
		"timed out after 60ms waiting for rollout of Deployment a/x:",
		"  - Deployment a/x not found",
	))
}

func TestDescribePodInitContainerAndNoStatus(t *testing.T) {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "multus-x"},
		Spec: corev1.PodSpec{
			NodeName:       "sriov-worker",
			InitContainers: []corev1.Container{{Name: "install", Image: "i:1"}},
			Containers:     []corev1.Container{{Name: "kube-multus", Image: "m:1"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{{
			Name: "install", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", Message: "cp: cannot create\n/host/opt/cni/bin/multus"}},
		}}},
	}
	got := describePod(p)
	want := "pod kube-system/multus-x on node sriov-worker: init container install terminated: exit code 2: Error: cp: cannot create /host/opt/cni/bin/multus; container kube-multus has no status yet (image m:1)"
	if got.text != want || got.kind != kindOther {
		t.Errorf("describePod:\n got %q (kind %d)\nwant %q", got.text, got.kind, want)
	}
	long := "start " + strings.Repeat("x", 500) + " the cause"
	if s := oneLine(long); len(s) != maxMessage+5 || !strings.HasPrefix(s, "start x") || !strings.HasSuffix(s, "x the cause") || !strings.Contains(s, "x ... x") {
		t.Errorf("oneLine kept %d characters: %s", len(s), s)
	}
}
