package kube

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func node(name string, labels map[string]string, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Spec: corev1.NodeSpec{Taints: taints}}
}

func TestFixUps(t *testing.T) {
	other := corev1.Taint{Key: "example.com/keep", Effect: corev1.TaintEffectNoExecute}
	c := fake.NewSimpleClientset(
		node("sriov-control-plane", map[string]string{ControlPlaneLabel: "", MasterLabel: ""},
			corev1.Taint{Key: MasterLabel, Effect: corev1.TaintEffectNoSchedule},
			corev1.Taint{Key: ControlPlaneLabel, Effect: corev1.TaintEffectNoSchedule}, other),
		node("sriov-worker", nil),
		node("sriov-worker2", nil),
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "standard"}},
	)
	ctx := context.Background()
	for i := 0; i < 2; i++ { // idempotent
		if err := (FixUps{Client: c}).Apply(ctx); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	cp, _ := c.CoreV1().Nodes().Get(ctx, "sriov-control-plane", metav1.GetOptions{})
	if len(cp.Spec.Taints) != 1 || cp.Spec.Taints[0].Key != other.Key {
		t.Fatalf("control plane taints: %+v", cp.Spec.Taints)
	}
	if cp.Labels[SchedulableLabel] != "true" {
		t.Fatal("control plane not schedulable for KubeVirt")
	}
	if _, ok := cp.Labels[WorkerRoleLabel]; ok {
		t.Fatal("control plane got the worker role")
	}
	for _, n := range []string{"sriov-worker", "sriov-worker2"} {
		w, _ := c.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if v, ok := w.Labels[WorkerRoleLabel]; !ok || v != "" || w.Labels[SchedulableLabel] != "true" {
			t.Fatalf("%s labels: %v", n, w.Labels)
		}
	}
	if _, err := c.StorageV1().StorageClasses().Get(ctx, "standard", metav1.GetOptions{}); err == nil {
		t.Fatal("storage class standard still there")
	}
}

// TestTaintsChangedMeanwhile: the node lifecycle controller lifts the
// not-ready taint between our read of the node and our patch (seen on a
// real cluster right after every node turned Ready). The patch's test op
// fails; the fix-up reads the node again and succeeds, keeping no stale
// taint and removing the master taint.
func TestTaintsChangedMeanwhile(t *testing.T) {
	notReady := corev1.Taint{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule}
	master := corev1.Taint{Key: MasterLabel, Effect: corev1.TaintEffectNoSchedule}
	c := fake.NewSimpleClientset(node("sriov-control-plane", map[string]string{MasterLabel: ""}, master, notReady))
	ctx := context.Background()
	n, _ := c.CoreV1().Nodes().Get(ctx, "sriov-control-plane", metav1.GetOptions{})
	patches := 0
	c.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		patches++
		if patches == 1 {
			// The controller, just before our first patch lands.
			cur, _ := c.Tracker().Get(corev1.SchemeGroupVersion.WithResource("nodes"), "", "sriov-control-plane")
			cur.(*corev1.Node).Spec.Taints = []corev1.Taint{master}
			if err := c.Tracker().Update(corev1.SchemeGroupVersion.WithResource("nodes"), cur, ""); err != nil {
				t.Fatal(err)
			}
		}
		return false, nil, nil
	})
	if err := RemoveNoScheduleTaints(ctx, c, n); err != nil {
		t.Fatalf("RemoveNoScheduleTaints: %v", err)
	}
	if patches != 2 {
		t.Errorf("%d patches, want 2 (the first one's test op fails on the changed taints)", patches)
	}
	got, _ := c.CoreV1().Nodes().Get(ctx, "sriov-control-plane", metav1.GetOptions{})
	if len(got.Spec.Taints) != 0 {
		t.Errorf("taints after the fix-up: %+v, want none", got.Spec.Taints)
	}
}

// TestTaintPatchFailureNotARace: a patch that fails while the taints are
// as read is not retried.
func TestTaintPatchFailureNotARace(t *testing.T) {
	master := corev1.Taint{Key: MasterLabel, Effect: corev1.TaintEffectNoSchedule}
	c := fake.NewSimpleClientset(node("cp", nil, master))
	patches := 0
	c.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		patches++
		return true, nil, errors.New("admission webhook said no")
	})
	n, _ := c.CoreV1().Nodes().Get(context.Background(), "cp", metav1.GetOptions{})
	err := RemoveNoScheduleTaints(context.Background(), c, n)
	if err == nil || !strings.Contains(err.Error(), "admission webhook said no") || !strings.Contains(err.Error(), "node cp") {
		t.Fatalf("want the patch error naming the node, got %v", err)
	}
	if patches != 1 {
		t.Errorf("%d patches, want 1", patches)
	}
}

func TestLocalhostNodeRefused(t *testing.T) {
	c := fake.NewSimpleClientset(node("localhost", nil))
	err := (FixUps{Client: c}).Apply(context.Background())
	if err == nil || !strings.Contains(err.Error(), "localhost") {
		t.Fatalf("want a localhost error, got %v", err)
	}
}

func TestEnsureConfigMap(t *testing.T) {
	c := fake.NewSimpleClientset()
	ctx := context.Background()
	for _, v := range []string{"a", "b"} {
		if err := EnsureConfigMap(ctx, c, "kube-public", "local-registry-hosting", map[string]string{"k": v}); err != nil {
			t.Fatal(err)
		}
	}
	cm, err := c.CoreV1().ConfigMaps("kube-public").Get(ctx, "local-registry-hosting", metav1.GetOptions{})
	if err != nil || cm.Data["k"] != "b" {
		t.Fatalf("%v %v", cm, err)
	}
}
