package kindsriov

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/kubevirt/kubevirtci-go/internal/components"
	"github.com/kubevirt/kubevirtci-go/internal/sriov"
)

// The PFs move, the SR-IOV nodes are prepared and the API server is waited
// for while kind create still runs; the components are deployed only after
// it has returned, once the SR-IOV workers are labelled.
func TestSRIOVStepsOverlapKindCreate(t *testing.T) {
	w := hostWithOtherCluster()
	w.createGate = make(chan struct{})
	h := newHarness(t, w, nil)
	before := h.snapshot()
	overlapped := map[string]bool{}
	h.p.deps.hook = func(ctx context.Context, step string, after bool) error {
		switch {
		case after && (strings.HasPrefix(step, "Moving SR-IOV PFs") || strings.HasPrefix(step, "Preparing the SR-IOV nodes") || strings.HasPrefix(step, "Waiting for the API server")):
			overlapped[step] = !w.created()
		case !after && strings.HasPrefix(step, "Waiting for kind create"):
			close(w.createGate)
		}
		return nil
	}
	deploy := h.p.deps.deploy
	h.p.deps.deploy = func(ctx context.Context, c kubernetes.Interface, rc *rest.Config, params components.Params) error {
		if !w.created() {
			t.Error("the components were deployed before kind create returned")
		}
		n, err := c.CoreV1().Nodes().Get(ctx, "sriov-worker", metav1.GetOptions{})
		if err != nil || n.Labels[sriov.NodeLabelKey] != sriov.NodeLabelValue {
			t.Errorf("the components were deployed before the SR-IOV workers were labelled: %v %v", err, n.GetLabels())
		}
		return deploy(ctx, c, rc, params)
	}
	if err := h.p.Up(context.Background()); err != nil {
		t.Fatalf("cluster-up: %v\n%s", err, h.log)
	}
	if len(overlapped) != 3 {
		t.Fatalf("steps seen: %v", overlapped)
	}
	for s, ok := range overlapped {
		if !ok {
			t.Errorf("%q ended after kind create returned", s)
		}
	}
	if h.deployed != 1 {
		t.Errorf("components deployed %d times", h.deployed)
	}
	h.down("after cluster-up", before)
}

// A step that fails while kind create runs: the failure waits for kind
// create to return (the kind library cannot be stopped), then gives the PFs
// back and leaves the rest for inspection.
func TestFailureWhileKindCreates(t *testing.T) {
	w := hostWithOtherCluster()
	w.createGate = make(chan struct{})
	h := newHarness(t, w, nil)
	before := h.snapshot()
	h.p.deps.hook = func(ctx context.Context, step string, after bool) error {
		if after && strings.HasPrefix(step, "Preparing the SR-IOV nodes") {
			time.AfterFunc(200*time.Millisecond, func() { close(w.createGate) })
			return errInjected
		}
		return nil
	}
	err := h.p.Up(context.Background())
	if !errors.Is(err, errInjected) {
		t.Fatalf("cluster-up: %v, want the injected failure", err)
	}
	if !w.created() {
		t.Error("cluster-up returned before kind create did")
	}
	if !strings.Contains(h.log.String(), "waiting for kind create to return first") {
		t.Errorf("the wait for kind create is not said:\n%s", h.log)
	}
	h.checkPFsHome("after the failure")
	if !strings.Contains(err.Error(), "Left for inspection (created by this run): ") || !h.exists("sriov-worker") {
		t.Errorf("the nodes are not left for inspection:\n%v", err)
	}
	h.down("after the failure", before)
}

// kind create fails while the steps beside it wait for the API server: the
// error is kind's, with what the kubelets said, and the PFs go back.
func TestKindCreateFailsWhileTheStepsWait(t *testing.T) {
	w := hostWithOtherCluster()
	w.createGate = make(chan struct{})
	w.fail["kind create"] = errors.New("kubeadm init: exit status 1")
	w.kubeletLog = map[string]string{"sriov-control-plane": "kubelet: failed to run Kubelet: misconfiguration"}
	h := newHarness(t, w, nil)
	before := h.snapshot()
	h.p.deps.apiReady = func(ctx context.Context, _ kubernetes.Interface) error {
		select {
		case <-w.createGate:
		default:
			close(w.createGate)
		}
		return errors.New("connection refused")
	}
	err := h.p.Up(context.Background())
	if err == nil || !strings.Contains(err.Error(), "kind create cluster sriov: kubeadm init: exit status 1") || !strings.Contains(err.Error(), "failed to run Kubelet") {
		t.Fatalf("cluster-up: %v, want kind's error with the kubelet's log", err)
	}
	if !strings.Contains(h.log.String(), "✗ Waiting for the API server") {
		t.Errorf("the failure is not the API server wait's:\n%s", h.log)
	}
	h.checkPFsHome("after the failure")
	h.down("after the failure", before)
}

// A worker whose Node registers a moment after kind create returned is
// labelled once it is there.
func TestSRIOVWorkerLabelledOnceRegistered(t *testing.T) {
	h := newHarness(t, hostWithOtherCluster(), nil)
	before := h.snapshot()
	var client *fake.Clientset
	h.p.deps.client = func(kubeconfig string) (kubernetes.Interface, *rest.Config, error) {
		client = fakeClient([]string{"sriov-control-plane", "sriov-worker"}).(*fake.Clientset)
		return client, &rest.Config{}, nil
	}
	h.p.deps.hook = func(ctx context.Context, step string, after bool) error {
		if !after && strings.HasPrefix(step, "Labelling the SR-IOV nodes") {
			time.AfterFunc(600*time.Millisecond, func() {
				n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "sriov-worker2"},
					Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
				if _, err := client.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
					t.Error(err)
				}
			})
		}
		return nil
	}
	if err := h.p.Up(context.Background()); err != nil {
		t.Fatalf("cluster-up: %v\n%s", err, h.log)
	}
	for _, name := range []string{"sriov-worker", "sriov-worker2"} {
		n, err := client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil || n.Labels[sriov.NodeLabelKey] != sriov.NodeLabelValue {
			t.Errorf("node %s not labelled: %v %v", name, err, n.GetLabels())
		}
	}
	h.down("after cluster-up", before)
}

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:40123": "127.0.0.1:40123",
		"0.0.0.0:6443":    "127.0.0.1:6443",
		":6443":           "127.0.0.1:6443",
		"::1:40123":       "[::1]:40123",
		"[::1]:40123":     "[::1]:40123",
		":::6443":         "[::1]:6443",
		"127.0.0.1:":      "",
		"":                "",
	} {
		if got := dialable(in); got != want {
			t.Errorf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
}
