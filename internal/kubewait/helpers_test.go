package kubewait

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// short is the timeout of waits expected to time out.
const short = 60 * time.Millisecond

// long is the timeout of waits expected to succeed: far longer than they
// take, so a hang shows as a failure rather than a slow pass.
const long = 5 * time.Second

// fakeCluster is a fake clientset that reports when a wait's watches have
// started, so a test changes state only once the wait can see the change
// (the fake does not replay events between list and watch).
type fakeCluster struct {
	*fake.Clientset
	mu      sync.Mutex
	watches int
	started chan struct{}
}

func newFake(objs ...runtime.Object) *fakeCluster {
	f := &fakeCluster{Clientset: fake.NewClientset(objs...), started: make(chan struct{}, 100)}
	f.PrependWatchReactor("*", func(a clienttesting.Action) (bool, watch.Interface, error) {
		w, err := f.Tracker().Watch(a.GetResource(), a.GetNamespace())
		f.started <- struct{}{}
		return true, w, err
	})
	return f
}

// afterWatches runs change in a goroutine once n watches have started.
func (f *fakeCluster) afterWatches(t *testing.T, n int, change func()) {
	t.Helper()
	go func() {
		for i := 0; i < n; i++ {
			select {
			case <-f.started:
			case <-time.After(long):
				t.Errorf("only %d of %d watches started", i, n)
				return
			}
		}
		change()
	}()
}

// changeWhenWaiting returns an option that, the first time the wait
// reports what it is missing (its caches are synced then), runs change once
// n watches have started. Progress reports are appended to *seen.
func (f *fakeCluster) changeWhenWaiting(t *testing.T, n int, seen *[]string, change func()) Option {
	var once sync.Once
	return WithProgress(func(s string) {
		if seen != nil {
			*seen = append(*seen, s)
		}
		once.Do(func() { f.afterWatches(t, n, change) })
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var ctx = context.Background()

func node(name string, lbls map[string]string, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls},
		Spec:       corev1.NodeSpec{Taints: taints},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"},
		}},
	}
}

func withAllocatable(n *corev1.Node, res string, count int64) *corev1.Node {
	n = n.DeepCopy()
	n.Status.Allocatable = corev1.ResourceList{corev1.ResourceName(res): *resource.NewQuantity(count, resource.DecimalSI)}
	return n
}

func pod(ns, name, nodeName string, lbls map[string]string, ready bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls},
		Spec: corev1.PodSpec{
			NodeName:   nodeName,
			Containers: []corev1.Container{{Name: "c", Image: "registry.example/img:v1"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	return setReady(p, ready)
}

func setReady(p *corev1.Pod, ready bool) *corev1.Pod {
	p = p.DeepCopy()
	st := corev1.ConditionFalse
	cs := corev1.ContainerStatus{Name: "c", Image: "registry.example/img:v1", Ready: ready}
	if ready {
		st = corev1.ConditionTrue
		cs.State.Running = &corev1.ContainerStateRunning{}
	} else {
		cs.State.Running = &corev1.ContainerStateRunning{}
	}
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
		{Type: corev1.PodReady, Status: st},
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
	return p
}

func pulling(p *corev1.Pod, reason string) *corev1.Pod {
	p = setReady(p, false)
	p.Status.Phase = corev1.PodPending
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
		Reason:  reason,
		Message: `rpc error: code = NotFound desc = failed to pull and unpack image "registry.example/img:v1": not found`,
	}}
	return p
}

func daemonSet(ns, name string, sel map[string]string, nodeSelector map[string]string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(name + "-uid"), Generation: 1, Labels: map[string]string{"app": name}},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{
					NodeSelector: nodeSelector,
					Containers:   []corev1.Container{{Name: "c", Image: "registry.example/img:v1"}},
				},
			},
		},
	}
}

func dsStatus(ds *appsv1.DaemonSet, desired, updated, available int32) *appsv1.DaemonSet {
	ds = ds.DeepCopy()
	ds.Status = appsv1.DaemonSetStatus{
		ObservedGeneration:     ds.Generation,
		DesiredNumberScheduled: desired,
		CurrentNumberScheduled: desired,
		UpdatedNumberScheduled: updated,
		NumberAvailable:        available,
		NumberReady:            available,
	}
	return ds
}

func ownedBy(p *corev1.Pod, ds *appsv1.DaemonSet) *corev1.Pod {
	p = p.DeepCopy()
	yes := true
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID, Controller: &yes}}
	return p
}

// waitErr checks that err is a *Error whose text equals want.
func waitErr(t *testing.T, err error, want string) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want:\n%s", want)
	}
	we, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %T %v, want *Error", err, err)
	}
	if got := err.Error(); got != want {
		t.Fatalf("error:\n%s\nwant:\n%s", got, want)
	}
	return we
}

func lines(ls ...string) string { return strings.Join(ls, "\n") }

type runtime0 = runtime.Object

func nodesAsObjects(nodes []*corev1.Node) []runtime.Object {
	out := make([]runtime.Object, len(nodes))
	for i, n := range nodes {
		out[i] = n
	}
	return out
}
