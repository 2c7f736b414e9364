package components

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/kubevirt/kubevirtci-go/internal/kubewait"
	"github.com/kubevirt/kubevirtci-go/internal/step"
)

type recordingApplier struct {
	calls [][]*unstructured.Unstructured
	err   error
}

func (r *recordingApplier) Apply(_ context.Context, objs []*unstructured.Unstructured) error {
	r.calls = append(r.calls, objs)
	return r.err
}

func TestDeploy(t *testing.T) {
	var out bytes.Buffer
	a := &recordingApplier{}
	if err := Deploy(context.Background(), a, fake.NewClientset(), params(twoPFsPerNode, false), step.New(&out, true)); err != nil {
		t.Fatal(err)
	}
	if len(a.calls) != 1 || len(a.calls[0]) != 10 {
		t.Fatalf("apply calls %v, want one call with the 10 objects", a.calls)
	}
	if !strings.Contains(out.String(), "deploy multus, sriov-cni and the SR-IOV device plugin") || !strings.Contains(out.String(), "DaemonSet sriov/kube-sriov-device-plugin-amd64") {
		t.Errorf("log:\n%s", out.String())
	}

	a = &recordingApplier{err: errors.New("apply DaemonSet x: forbidden")}
	if err := Deploy(context.Background(), a, fake.NewClientset(), params(onePFPerNode, false), nil); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("error %v, want the applier's", err)
	}
	a = &recordingApplier{}
	if err := Deploy(context.Background(), a, fake.NewClientset(), params(nil, false), nil); err == nil || len(a.calls) != 0 {
		t.Errorf("bad settings: error %v, %d apply calls; want an error before applying", err, len(a.calls))
	}

	// Without an injector image there is nothing more to deploy.
	a = &recordingApplier{}
	out.Reset()
	if err := DeployInjector(context.Background(), a, fake.NewClientset(), params(twoPFsPerNode, false), step.New(&out, true)); err != nil || len(a.calls) != 0 || out.Len() != 0 {
		t.Errorf("DeployInjector without an injector image: error %v, %d apply calls, log %q", err, len(a.calls), out.String())
	}
}

// DeployInjector applies the injector only once the DaemonSets' pods
// outside kube-system exist: its webhook would refuse them until it
// serves.
func TestDeployInjectorAfterTheDaemonSetPods(t *testing.T) {
	p := params(onePFPerNode, false)
	p.InjectorImage = "ghcr.io/k8snetworkplumbingwg/network-resources-injector:v1.9.0"
	var kept, held []runtime.Object
	for _, o := range cluster(t, p, nil) {
		if pod, ok := o.(*corev1.Pod); ok && pod.Namespace != "kube-system" {
			held = append(held, pod)
			continue
		}
		kept = append(kept, o)
	}
	if len(held) != 4 {
		t.Fatalf("%d pods outside kube-system, want sriov-cni's and the device plugin's on 2 workers", len(held))
	}
	client := fake.NewClientset(kept...)
	// The fake does not replay what happens between an informer's list and
	// its watch: the pods are created once the wait watches.
	watching := make(chan struct{}, 10)
	client.PrependWatchReactor("*", func(act clienttesting.Action) (bool, watch.Interface, error) {
		w, err := client.Tracker().Watch(act.GetResource(), act.GetNamespace())
		watching <- struct{}{}
		return true, w, err
	})
	a := &lockedApplier{}
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		err := Deploy(context.Background(), a, client, p, step.New(&out, true))
		if err == nil {
			err = DeployInjector(context.Background(), a, client, p, step.New(&out, true))
		}
		done <- err
	}()

	// The DaemonSets are applied; the injector waits for their pods.
	for range 2 { // daemonsets and pods
		select {
		case <-watching:
		case <-time.After(10 * time.Second):
			t.Fatal("the wait for the DaemonSets' pods did not start")
		}
	}
	time.Sleep(100 * time.Millisecond)
	if n := a.count(); n != 1 {
		t.Fatalf("%d apply calls before the DaemonSets' pods exist, want 1 (the components)", n)
	}
	for _, o := range held[:3] {
		if _, err := client.CoreV1().Pods(o.(*corev1.Pod).Namespace).Create(context.Background(), o.(*corev1.Pod), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n := a.count(); n != 1 {
		t.Fatalf("%d apply calls with one pod missing, want 1", n)
	}
	if _, err := client.CoreV1().Pods(held[3].(*corev1.Pod).Namespace).Create(context.Background(), held[3].(*corev1.Pod), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("DeployInjector did not return once every pod existed")
	}
	calls := a.calls()
	if len(calls) != 2 || calls[1][len(calls[1])-1].GetKind() != "Deployment" || calls[1][len(calls[1])-1].GetName() != "network-resources-injector" {
		t.Fatalf("apply calls %d, want the components, then the injector", len(calls))
	}
	if !strings.Contains(out.String(), "✓ deploy multus, sriov-cni and the SR-IOV device plugin") || !strings.Contains(out.String(), "✓ deploy network-resources-injector") {
		t.Errorf("log:\n%s", out.String())
	}
}

type lockedApplier struct {
	mu sync.Mutex
	r  recordingApplier
}

func (l *lockedApplier) Apply(ctx context.Context, objs []*unstructured.Unstructured) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Apply(ctx, objs)
}

func (l *lockedApplier) count() int { return len(l.calls()) }

func (l *lockedApplier) calls() [][]*unstructured.Unstructured {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]*unstructured.Unstructured(nil), l.r.calls...)
}

// cluster returns the objects of a cluster where the components run: one
// control plane and two SR-IOV workers, each DaemonSet with a Ready pod on
// each node it targets, and the workers' allocatable VFs.
func cluster(t *testing.T, p Params, vfs map[string]int64) []runtime.Object {
	t.Helper()
	objs, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	sriov := map[string]string{"kubernetes.io/arch": "amd64", p.NodeLabelKey: p.NodeLabelValue}
	nodes := []*corev1.Node{
		{ObjectMeta: metav1.ObjectMeta{Name: "sriov-control-plane", Labels: map[string]string{"kubernetes.io/arch": "amd64"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "sriov-worker", Labels: sriov}},
		{ObjectMeta: metav1.ObjectMeta{Name: "sriov-worker2", Labels: sriov}},
	}
	var out []runtime.Object
	for _, n := range nodes {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
		if c, ok := vfs[n.Name]; ok {
			n.Status.Allocatable = corev1.ResourceList{corev1.ResourceName(p.Resource()): *resource.NewQuantity(c, resource.DecimalSI)}
		}
		out = append(out, n)
	}
	for _, o := range objs {
		if o.GetKind() != "DaemonSet" {
			continue
		}
		ds := &appsv1.DaemonSet{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, ds); err != nil {
			t.Fatal(err)
		}
		targets := 0
		for _, n := range nodes {
			if ds.Spec.Template.Spec.NodeSelector != nil && n.Labels[p.NodeLabelKey] != p.NodeLabelValue {
				continue
			}
			targets++
			out = append(out, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ds.Namespace, Name: ds.Name + "-" + n.Name, Labels: ds.Spec.Template.Labels},
				Spec:       corev1.PodSpec{NodeName: n.Name, Containers: ds.Spec.Template.Spec.Containers},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
					{Type: corev1.PodReady, Status: corev1.ConditionTrue},
				}},
			})
		}
		n := int32(targets)
		ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: n, CurrentNumberScheduled: n, UpdatedNumberScheduled: n, NumberAvailable: n, NumberReady: n}
		out = append(out, ds)
	}
	return out
}

func TestWait(t *testing.T) {
	p := params(twoPFsPerNode, false)
	vfs := map[string]int64{"sriov-worker": 12, "sriov-worker2": 12}
	client := fake.NewClientset(cluster(t, p, vfs)...)
	var out bytes.Buffer
	err := Wait(context.Background(), client, p, WaitOptions{VFsPerNode: vfs, DaemonSetsTimeout: time.Second, AllocatableTimeout: time.Second, PodsTimeout: time.Second}, step.New(&out, false))
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"wait for the multus, sriov-cni and device plugin DaemonSets",
		"wait for allocatable kubevirt.io/sriov_net (sriov-worker=12, sriov-worker2=12)",
		"wait for all pods to be Ready",
	} {
		if !strings.Contains(out.String(), "✓ "+want) {
			t.Errorf("log lacks %q:\n%s", want, out.String())
		}
	}
}

func TestWaitAllocatableTimeout(t *testing.T) {
	p := params(twoPFsPerNode, false)
	// sriov-worker2's device plugin advertises only one PF's VFs: the
	// symptom of the old scripts' pfNames defect.
	client := fake.NewClientset(cluster(t, p, map[string]int64{"sriov-worker": 12, "sriov-worker2": 6})...)
	start := time.Now()
	err := Wait(context.Background(), client, p, WaitOptions{
		VFsPerNode:         map[string]int64{"sriov-worker": 12, "sriov-worker2": 12},
		AllocatableTimeout: 50 * time.Millisecond,
	}, step.New(io.Discard, false))
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s", d)
	}
	var we *kubewait.Error
	if !errors.As(err, &we) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want a kubewait timeout", err)
	}
	want := "node sriov-worker2: allocatable kubevirt.io/sriov_net is 6, want 12"
	if len(we.Problems) != 1 || we.Problems[0] != want {
		t.Errorf("problems %q, want [%q]", we.Problems, want)
	}
	if !strings.HasPrefix(err.Error(), "wait for allocatable kubevirt.io/sriov_net") {
		t.Errorf("error %q does not name the step", err)
	}
}

func TestWaitDaemonSetsTimeoutAndSkip(t *testing.T) {
	p := params(onePFPerNode, false)
	objs := cluster(t, p, nil)
	var kept []runtime.Object
	for _, o := range objs {
		if pod, ok := o.(*corev1.Pod); ok && pod.Name == "kube-sriov-device-plugin-amd64-sriov-worker2" {
			continue
		}
		kept = append(kept, o)
	}
	client := fake.NewClientset(kept...)
	err := Wait(context.Background(), client, p, WaitOptions{DaemonSetsTimeout: 50 * time.Millisecond}, nil)
	if err == nil || !strings.Contains(err.Error(), "daemonset sriov/kube-sriov-device-plugin-amd64: no pod on node sriov-worker2 yet") {
		t.Fatalf("error %v, want the node without a device plugin pod", err)
	}

	var out bytes.Buffer
	if err := Wait(context.Background(), client, p, WaitOptions{Skip: true}, step.New(&out, false)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "skipping the component waits") {
		t.Errorf("log %q", out.String())
	}
}
