package kubewait

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

var sriovdp = map[string]string{"app": "sriovdp"}

func TestPodsReadyWaitsForChange(t *testing.T) {
	p := pod("sriov", "dp-a", "sriov-worker", sriovdp, false)
	f := newFake(p)
	var progress []string
	change := f.changeWhenWaiting(t, 1, &progress, func() {
		_, err := f.CoreV1().Pods("sriov").UpdateStatus(ctx, setReady(p, true), metav1.UpdateOptions{})
		if err != nil {
			t.Error(err)
		}
	})
	start := time.Now()
	err := PodsReady(ctx, f, "sriov", "app=sriovdp", long, change)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %s", d)
	}
	want := "pod sriov/dp-a on node sriov-worker: container c running but not ready (readiness probe failing or not yet run)"
	if len(progress) != 1 || progress[0] != want {
		t.Errorf("progress = %q, want [%q]", progress, want)
	}
}

func TestPodsReadyAlreadyReadyAndVacuous(t *testing.T) {
	f := newFake(pod("sriov", "dp-a", "w", sriovdp, true), pod("kube-system", "other", "w", nil, false))
	must(t, PodsReady(ctx, f, "sriov", "", short))
	must(t, PodsReady(ctx, f, "", "app=sriovdp", short))
	must(t, PodsReady(ctx, f, "empty", "", short))
}

func TestPodsReadyIgnoresFinishedPodsAndOtherLabels(t *testing.T) {
	done := pod("sriov", "job", "w", sriovdp, false)
	done.Status.Phase = corev1.PodSucceeded
	failed := pod("sriov", "evicted", "w", sriovdp, false)
	failed.Status.Phase = corev1.PodFailed
	// The fake's watch does not filter by label; the wait must.
	f := newFake(done, failed, pod("sriov", "unrelated", "w", map[string]string{"app": "x"}, false))
	must(t, PodsReady(ctx, f, "sriov", "app=sriovdp", short))
}

func TestPodsReadyTimeoutNamesPodNodeAndReason(t *testing.T) {
	unscheduled := pod("sriov", "dp-c", "", sriovdp, false)
	unscheduled.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
		Message: "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
	}}}
	crashing := setReady(pod("sriov", "dp-d", "sriov-worker3", sriovdp, false), false)
	crashing.Status.ContainerStatuses[0].RestartCount = 4
	crashing.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 1m20s restarting failed container"}}
	crashing.Status.ContainerStatuses[0].LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}

	f := newFake(
		pulling(pod("sriov", "dp-a", "sriov-worker", sriovdp, false), "ErrImagePull"),
		pod("sriov", "dp-b", "sriov-worker2", sriovdp, true),
		unscheduled,
		crashing,
	)
	start := time.Now()
	err := PodsReady(ctx, f, "sriov", "app=sriovdp", short)
	if d := time.Since(start); d < short || d > short+time.Second {
		t.Errorf("returned after %s, want about %s", d, short)
	}
	we := waitErr(t, err, lines(
		"timed out after 60ms waiting for pods in namespace sriov with labels app=sriovdp to be Ready:",
		`  - pod sriov/dp-a on node sriov-worker: container c waiting: ErrImagePull (image registry.example/img:v1): rpc error: code = NotFound desc = failed to pull and unpack image "registry.example/img:v1": not found`,
		`  - pod sriov/dp-c (not scheduled): not scheduled: Unschedulable: 0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.`,
		`  - pod sriov/dp-d on node sriov-worker3: container c waiting: CrashLoopBackOff (image registry.example/img:v1, 4 restarts): back-off 1m20s restarting failed container; last exit code 1: Error`,
	))
	if !errors.Is(err, context.DeadlineExceeded) || we.Timeout != short || len(we.Problems) != 3 {
		t.Errorf("error fields %+v: want DeadlineExceeded, the timeout and 3 problems", we)
	}
}

func TestPodsReadyFailFast(t *testing.T) {
	f := newFake(
		pulling(pod("sriov", "dp-a", "sriov-worker", sriovdp, false), "ImagePullBackOff"),
		pulling(pod("sriov", "dp-b", "sriov-worker2", sriovdp, false), "ErrImagePull"),
		pod("sriov", "dp-c", "sriov-worker3", sriovdp, true),
	)
	start := time.Now()
	err := PodsReady(ctx, f, "sriov", "", long, FailFast())
	if d := time.Since(start); d > time.Second {
		t.Errorf("fail fast took %s", d)
	}
	if !errors.Is(err, ErrWontHeal) {
		t.Fatalf("error %v, want ErrWontHeal", err)
	}
	if !strings.HasPrefix(err.Error(), "gave up waiting for pods in namespace sriov to be Ready: what is left will not heal by waiting") ||
		!strings.Contains(err.Error(), "pod sriov/dp-a on node sriov-worker: container c waiting: ImagePullBackOff (image registry.example/img:v1)") {
		t.Errorf("error text:\n%s", err)
	}
}

func TestPodsReadyFailFastWaitsWhileOtherProblemsRemain(t *testing.T) {
	creating := setReady(pod("sriov", "dp-b", "sriov-worker2", sriovdp, false), false)
	creating.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	f := newFake(pulling(pod("sriov", "dp-a", "sriov-worker", sriovdp, false), "ErrImagePull"), creating)
	err := PodsReady(ctx, f, "sriov", "", short, FailFast())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want a timeout: a container is still being created", err)
	}
}

func TestPodsReadyCancelled(t *testing.T) {
	f := newFake(pod("sriov", "dp-a", "w", nil, false))
	cctx, cancel := context.WithCancel(ctx)
	err := PodsReady(cctx, f, "sriov", "", long, f.changeWhenWaiting(t, 1, nil, cancel))
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "stopped waiting for pods in namespace sriov to be Ready: context canceled:\n  - pod sriov/dp-a") {
		t.Fatalf("error %v, want cancellation with the pod named", err)
	}
}

func TestPodsReadyBadSelector(t *testing.T) {
	if err := PodsReady(ctx, newFake(), "", "app in (", short); err == nil || !strings.Contains(err.Error(), `pod label selector "app in ("`) {
		t.Fatalf("error %v", err)
	}
}

func TestNodesReady(t *testing.T) {
	notReady := node("sriov-worker", nil)
	notReady.Status.Conditions[0] = corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady", Message: "container runtime network not ready: NetworkReady=false"}
	f := newFake(node("sriov-control-plane", nil), notReady)
	err := NodesReady(ctx, f, short)
	waitErr(t, err, lines(
		"timed out after 60ms waiting for all nodes to be Ready:",
		"  - node sriov-worker: Ready=False: KubeletNotReady: container runtime network not ready: NetworkReady=false",
	))

	f = newFake(node("sriov-control-plane", nil), notReady)
	must(t, NodesReady(ctx, f, long, f.changeWhenWaiting(t, 1, nil, func() {
		_, err := f.CoreV1().Nodes().UpdateStatus(ctx, node("sriov-worker", nil), metav1.UpdateOptions{})
		if err != nil {
			t.Error(err)
		}
	})))
}

// A node that is not Ready because a pod on it will not heal (here its
// pod network's DaemonSet pod crash-loops) ends a fail-fast wait after the
// grace (such a pod may crash once while its node starts), naming the
// node, the pod and its log; a pod on it that is only starting does not.
func TestNodesReadyFailFastThroughThePodsOnANode(t *testing.T) {
	notReady := node("sriov-worker", nil)
	notReady.Status.Conditions[0] = corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady", Message: "container runtime network not ready: NetworkReady=false"}
	cni := setReady(pod("kube-flannel", "kube-flannel-ds-x", "sriov-worker", nil, false), false)
	cni.Status.ContainerStatuses[0].RestartCount = 4
	cni.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 1m20s restarting failed container"}}
	cni.Status.ContainerStatuses[0].LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}
	elsewhere := cni.DeepCopy()
	elsewhere.Name, elsewhere.Spec.NodeName = "kube-flannel-ds-y", "sriov-control-plane"

	start := time.Now()
	err := NodesReady(ctx, newFake(node("sriov-control-plane", nil), notReady, cni), long, FailFast(), withGrace(300*time.Millisecond))
	if d := time.Since(start); !errors.Is(err, ErrWontHeal) || d < 300*time.Millisecond || d > 3*time.Second {
		t.Fatalf("after %s: %v; want ErrWontHeal after the grace of 300ms", d, err)
	}
	for _, want := range []string{
		"node sriov-worker: Ready=False: KubeletNotReady: container runtime network not ready: NetworkReady=false; on it, pod kube-flannel/kube-flannel-ds-x on node sriov-worker: container c waiting: CrashLoopBackOff",
		"last 1 lines of container c's log:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q:\n%s", want, err)
		}
	}

	// The same pod on a Ready node, or a pod on the node that is only
	// starting, is not why the node is not Ready: the wait goes on.
	starting := pulling(pod("kube-flannel", "kube-flannel-ds-x", "sriov-worker", nil, false), "ContainerCreating")
	// A pod network's pod that crashed a few times while its node starts
	// (kube-proxy not there yet on a busy host) may still heal.
	fewCrashes := cni.DeepCopy()
	fewCrashes.Status.ContainerStatuses[0].RestartCount = nodeStartCrashes - 1
	for name, objs := range map[string][]runtime.Object{
		"crash loop on a Ready node":    {node("sriov-control-plane", nil), notReady, elsewhere},
		"pod starting":                  {node("sriov-control-plane", nil), notReady, starting},
		"a few crashes while it starts": {node("sriov-control-plane", nil), notReady, fewCrashes},
	} {
		if err := NodesReady(ctx, newFake(objs...), 500*time.Millisecond, FailFast(), withGrace(100*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v, want a timeout", name, err)
		}
	}
	// Without FailFast, it waits.
	if err := NodesReady(ctx, newFake(notReady, cni), short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("without FailFast: %v, want a timeout", err)
	}
}

func TestNodesReadyNeedsANode(t *testing.T) {
	waitErr(t, NodesReady(ctx, newFake(), short), lines(
		"timed out after 60ms waiting for all nodes to be Ready:",
		"  - no node is registered yet",
	))
}

// A pull that may heal (the registry did not answer) is given the grace
// of the kubelet's back-offs before the wait gives up; one that cannot
// (not found) ends it at once.
func TestPodsReadyFailFastGraceForPullsThatMayHeal(t *testing.T) {
	p := pulling(pod("sriov", "dp-a", "sriov-worker", sriovdp, false), "ImagePullBackOff")
	p.Status.ContainerStatuses[0].State.Waiting.Message = `failed to pull image "ghcr.io/x/y:v1": dial tcp: lookup ghcr.io: no such host`
	f := newFake(p)
	start := time.Now()
	err := PodsReady(ctx, f, "sriov", "", long, FailFast(), withGrace(300*time.Millisecond))
	if d := time.Since(start); !errors.Is(err, ErrWontHeal) || d < 300*time.Millisecond || d > 3*time.Second {
		t.Fatalf("after %s: %v; want ErrWontHeal after the grace of 300ms", d, err)
	}
	if !strings.Contains(err.Error(), "what is left will not heal by waiting") || !strings.Contains(err.Error(), "lookup ghcr.io: no such host") {
		t.Errorf("error text:\n%s", err)
	}
	if !permanentPull("ErrImagePull", `rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/x/y:v0": failed to resolve reference "ghcr.io/x/y:v0": ghcr.io/x/y:v0: not found`) ||
		!permanentPull("ErrImagePull", "pull access denied, repository does not exist or may require authorization") ||
		permanentPull("ErrImagePull", "dial tcp 10.0.0.1:443: i/o timeout") {
		t.Error("permanentPull misjudges the kubelet's messages")
	}
}

// A container in CrashLoopBackOff ends a fail-fast wait at once, with the
// last lines of its previous run's log.
func TestPodsReadyFailFastOnCrashLoop(t *testing.T) {
	p := setReady(pod("sriov", "dp-a", "sriov-worker", sriovdp, false), false)
	p.Status.ContainerStatuses[0].RestartCount = 3
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container=c pod=dp-a"}}
	p.Status.ContainerStatuses[0].LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}
	f := newFake(p)
	start := time.Now()
	err := PodsReady(ctx, f, "sriov", "", long, FailFast())
	if !errors.Is(err, ErrWontHeal) || time.Since(start) > 5*time.Second {
		t.Fatalf("after %s: %v; want ErrWontHeal at once", time.Since(start), err)
	}
	for _, want := range []string{
		"pod sriov/dp-a on node sriov-worker: container c waiting: CrashLoopBackOff (image registry.example/img:v1, 3 restarts): back-off 40s restarting failed container=c pod=dp-a; last exit code 1: Error",
		"last 1 lines of container c's log:\n        fake logs",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q:\n%s", want, err)
		}
	}
	// Without fail fast, it waits.
	if err := PodsReady(ctx, newFake(p), "sriov", "", short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("without FailFast: %v, want a timeout", err)
	}
	// A container that crashed once or twice (what it needs still coming
	// up) may yet run: the wait goes on, also past the grace.
	early := p.DeepCopy()
	early.Status.ContainerStatuses[0].RestartCount = CrashRestarts - 1
	if err := PodsReady(ctx, newFake(early), "sriov", "", 500*time.Millisecond, FailFast(), withGrace(100*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%d restarts: %v, want a timeout", CrashRestarts-1, err)
	}
}

// A pod the scheduler cannot place gets the grace, then ends the wait.
func TestPodsReadyFailFastUnschedulable(t *testing.T) {
	p := pod("kube-system", "injector-x", "", nil, false)
	p.Status.Phase = corev1.PodPending
	p.Status.ContainerStatuses = nil
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."}}
	start := time.Now()
	err := PodsReady(ctx, newFake(p), "kube-system", "", long, FailFast(), withGrace(200*time.Millisecond))
	if d := time.Since(start); !errors.Is(err, ErrWontHeal) || d < 200*time.Millisecond {
		t.Fatalf("after %s: %v; want ErrWontHeal after the grace", d, err)
	}
	if !strings.Contains(err.Error(), "pod kube-system/injector-x (not scheduled): not scheduled: Unschedulable: 0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.") {
		t.Errorf("error text:\n%s", err)
	}
}
