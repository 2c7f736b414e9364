package kube

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
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
