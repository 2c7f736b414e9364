// Package kube holds the provider's small Kubernetes chores, done with
// client-go: the node fix-ups after creation, labels, the local registry
// ConfigMap, and building clients from the kubeconfig cluster-up wrote.
package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Well-known labels and taints.
const (
	SchedulableLabel   = "kubevirt.io/schedulable"
	WorkerRoleLabel    = "node-role.kubernetes.io/worker"
	ControlPlaneLabel  = "node-role.kubernetes.io/control-plane"
	MasterLabel        = "node-role.kubernetes.io/master"
	DefaultStorageName = "standard"
)

// RESTConfig loads a kubeconfig file.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.QPS = 50
	cfg.Burst = 100
	cfg.UserAgent = "kubevirtci"
	return cfg, nil
}

// Client builds a clientset from a kubeconfig file.
func Client(kubeconfig string) (kubernetes.Interface, *rest.Config, error) {
	cfg, err := RESTConfig(kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	c, err := kubernetes.NewForConfig(cfg)
	return c, cfg, err
}

// apiReadyTimeout bounds one readiness request to an API server that is
// starting.
const apiReadyTimeout = 2 * time.Second

// APIReady fails unless the API server answers its readiness check
// (/readyz: etcd reached, its own start-up hooks done, the bootstrap RBAC
// roles among them).
func APIReady(ctx context.Context, c kubernetes.Interface) error {
	ctx, cancel := context.WithTimeout(ctx, apiReadyTimeout)
	defer cancel()
	_, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	return err
}

// IsControlPlane reports whether a node carries a control-plane role label.
func IsControlPlane(n *corev1.Node) bool {
	_, cp := n.Labels[ControlPlaneLabel]
	_, m := n.Labels[MasterLabel]
	return cp || m
}

// FixUps is what the provider does to a fresh cluster's nodes, as the
// old scripts did: KubeVirt schedules on every node, workers carry the
// worker role, the control plane takes workloads, and kind's default
// storage class is removed.
type FixUps struct {
	Client kubernetes.Interface
}

// CheckNodeNames fails when a node is named localhost: kubelet would then
// register under a name that breaks KubeVirt's node handling.
func CheckNodeNames(nodes []corev1.Node) error {
	for _, n := range nodes {
		if n.Name == "localhost" || strings.HasPrefix(n.Name, "localhost.") {
			return fmt.Errorf("node %q: a node named localhost cannot be used; the host name of the node container must not be localhost", n.Name)
		}
	}
	return nil
}

// Apply runs every fix-up; each is idempotent.
func (f FixUps) Apply(ctx context.Context) error {
	list, err := f.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	if err := CheckNodeNames(list.Items); err != nil {
		return err
	}
	nodes := list.Items
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	for i := range nodes {
		n := &nodes[i]
		labels := map[string]*string{SchedulableLabel: ptr("true")}
		if !IsControlPlane(n) {
			labels[WorkerRoleLabel] = ptr("")
		}
		if err := PatchLabels(ctx, f.Client, n.Name, labels); err != nil {
			return err
		}
		if err := RemoveNoScheduleTaints(ctx, f.Client, n); err != nil {
			return err
		}
	}
	err = f.Client.StorageV1().StorageClasses().Delete(ctx, DefaultStorageName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting storage class %s: %w", DefaultStorageName, err)
	}
	return nil
}

func ptr(s string) *string { return &s }

// PatchLabels sets (or, with a nil value, removes) labels on a node with a
// merge patch.
func PatchLabels(ctx context.Context, c kubernetes.Interface, node string, labels map[string]*string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if err != nil {
		return err
	}
	if _, err := c.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("labelling node %s: %w", node, err)
	}
	return nil
}

// LabelNodes sets key=value on each named node.
func LabelNodes(ctx context.Context, c kubernetes.Interface, nodes []string, key, value string) error {
	for _, n := range nodes {
		if err := PatchLabels(ctx, c, n, map[string]*string{key: ptr(value)}); err != nil {
			return err
		}
	}
	return nil
}

// RemoveNoScheduleTaints removes the master and control-plane NoSchedule
// taints from a node, keeping every other taint.
//
// The patch tests that the taints are still those it read, so that a taint
// someone else added since is never overwritten. On a young cluster the
// node lifecycle controller changes taints at any moment (it lifts
// node.kubernetes.io/not-ready shortly after a node turns Ready): when the
// patch fails and the node's taints are no longer those it was built from,
// the node is read again and the patch retried.
func RemoveNoScheduleTaints(ctx context.Context, c kubernetes.Interface, n *corev1.Node) error {
	const attempts = 5
	for i := 1; ; i++ {
		err := removeNoScheduleTaints(ctx, c, n.Name, n.Spec.Taints)
		if err == nil {
			return nil
		}
		if i == attempts {
			return fmt.Errorf("%w (the node's taints kept changing; tried %d times)", err, attempts)
		}
		fresh, gerr := c.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if gerr != nil || taintsJSON(fresh.Spec.Taints) == taintsJSON(n.Spec.Taints) {
			return err // not a race: the taints are as read (or cannot be read)
		}
		n = fresh
	}
}

func taintsJSON(t []corev1.Taint) string {
	b, _ := json.Marshal(t)
	return string(b)
}

// removeNoScheduleTaints patches the node's taints from taints (as read) to
// taints without the master and control-plane NoSchedule ones.
func removeNoScheduleTaints(ctx context.Context, c kubernetes.Interface, node string, taints []corev1.Taint) error {
	var keep []corev1.Taint
	for _, t := range taints {
		if t.Effect == corev1.TaintEffectNoSchedule && (t.Key == MasterLabel || t.Key == ControlPlaneLabel) {
			continue
		}
		keep = append(keep, t)
	}
	if len(keep) == len(taints) {
		return nil
	}
	if keep == nil {
		keep = []corev1.Taint{}
	}
	patch := fmt.Sprintf(`[{"op":"test","path":"/spec/taints","value":%s},{"op":"replace","path":"/spec/taints","value":%s}]`, taintsJSON(taints), taintsJSON(keep))
	if _, err := c.CoreV1().Nodes().Patch(ctx, node, types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("removing NoSchedule taints from node %s: %w", node, err)
	}
	return nil
}

// EnsureConfigMap creates or updates a ConfigMap's data.
func EnsureConfigMap(ctx context.Context, c kubernetes.Interface, namespace, name string, data map[string]string) error {
	cms := c.CoreV1().ConfigMaps(namespace)
	cur, err := cms.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Data: data}, metav1.CreateOptions{})
	case err == nil:
		cur.Data = data
		_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("writing ConfigMap %s/%s: %w", namespace, name, err)
	}
	return nil
}

// RenewedWatch reports whether err, given to an informer's watch error
// handler, is only the end of a watch that the reflector renews by itself
// (closed, or expired and re-listed): nothing to report.
func RenewedWatch(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
}
