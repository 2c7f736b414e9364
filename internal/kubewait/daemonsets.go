package kubewait

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Selection picks DaemonSets by name or by label selector.
type Selection struct {
	// Names of the DaemonSets; each must exist. A name may be written
	// "namespace/name", which is how to name DaemonSets of several
	// namespaces in one wait (with namespace "").
	Names []string
	// LabelSelector picks DaemonSets by their labels when Names is empty;
	// at least one must match.
	LabelSelector string
}

// Names selects DaemonSets by name.
func Names(names ...string) Selection { return Selection{Names: names} }

// Selector selects DaemonSets by a label selector such as "app=sriovdp".
func Selector(selector string) Selection { return Selection{LabelSelector: selector} }

func (w *watchSet) daemonSets(namespace string) cache.Store {
	key := "daemonsets"
	if namespace != "" {
		key += " in namespace " + namespace
	}
	return w.informer(key, func() cache.SharedIndexInformer {
		return appsinformers.NewDaemonSetInformer(w.client, namespace, 0, cache.Indexers{})
	})
}

// DaemonSetsAvailable waits until each selected DaemonSet in namespace
// ("" = all namespaces) is available on exactly the nodes it targets: its
// controller has observed its latest generation; desired, updated and
// available counts are equal with nothing misscheduled; the desired count
// equals the number of nodes its pod template's node name, node selector,
// required node affinity and tolerations (plus those the DaemonSet
// controller adds) allow; and each of those nodes runs a Ready pod of it.
//
// On timeout the error names, per DaemonSet, each targeted node without a
// Ready pod and why (no pod yet, or the pod's containers' waiting reasons).
func DaemonSetsAvailable(ctx context.Context, client kubernetes.Interface, namespace string, which Selection, timeout time.Duration, opts ...Option) error {
	var sel labels.Selector
	what := "daemonsets " + braces(namespace, which.Names) + " to be available on the nodes they target"
	if len(which.Names) == 0 {
		var err error
		if sel, err = labels.Parse(which.LabelSelector); err != nil {
			return fmt.Errorf("daemonset label selector %q: %w", which.LabelSelector, err)
		}
		where := "in all namespaces"
		if namespace != "" {
			where = "in namespace " + namespace
		}
		what = fmt.Sprintf("daemonsets with labels %q %s to be available on the nodes they target", which.LabelSelector, where)
	}
	return wait(ctx, client, what, timeout, opts, func(w *watchSet) func() status {
		dsStore := w.daemonSets(namespace)
		podStore := w.pods(namespace, "")
		nodeStore := w.nodes()
		return func() status {
			var all []*appsv1.DaemonSet
			for _, item := range dsStore.List() {
				if ds, ok := item.(*appsv1.DaemonSet); ok {
					all = append(all, ds)
				}
			}
			sort.Slice(all, func(i, j int) bool {
				return all[i].Namespace+"/"+all[i].Name < all[j].Namespace+"/"+all[j].Name
			})
			var picked []*appsv1.DaemonSet
			st := status{done: true}
			if len(which.Names) > 0 {
				for _, name := range which.Names {
					found := false
					for _, ds := range all {
						if ds.Name == name || ds.Namespace+"/"+ds.Name == name {
							picked = append(picked, ds)
							found = true
						}
					}
					if !found {
						st.done = false
						st.add(kindOther, "daemonset %s not found", braces(namespace, []string{name}))
					}
				}
			} else {
				for _, ds := range all {
					if sel.Matches(labels.Set(ds.Labels)) {
						picked = append(picked, ds)
					}
				}
				if len(picked) == 0 {
					st.done = false
					st.add(kindOther, "no daemonset matches labels %q", which.LabelSelector)
				}
			}
			nodes := nodesOf(nodeStore)
			for _, ds := range picked {
				s := daemonSetStatus(ds, nodes, podStore)
				st.done = st.done && s.done
				st.merge(s)
			}
			return st
		}
	})
}

// daemonSetStatus checks one DaemonSet against the nodes it targets.
func daemonSetStatus(ds *appsv1.DaemonSet, nodes []*corev1.Node, podStore cache.Store) status {
	var st status
	name := ds.Namespace + "/" + ds.Name
	if ds.Status.ObservedGeneration < ds.Generation {
		st.add(kindOther, "daemonset %s: its controller has not yet seen generation %d (observed %d)", name, ds.Generation, ds.Status.ObservedGeneration)
		return st
	}
	pods, err := daemonPods(ds, podStore)
	if err != nil {
		st.add(kindOther, "daemonset %s: %v", name, err)
		return st
	}
	var targets []*corev1.Node
	for _, n := range nodes {
		if shouldRunOn(&ds.Spec.Template.Spec, n) {
			targets = append(targets, n)
		}
	}
	byNode := map[string][]*corev1.Pod{}
	for _, p := range pods {
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
	}

	s := ds.Status
	var nodeProblems []problem
	ready := 0
	for _, n := range targets {
		pods := byNode[n.Name]
		ok := false
		for _, p := range pods {
			if podReady(p) && p.DeletionTimestamp == nil {
				ok = true
			}
		}
		if ok {
			ready++
			continue
		}
		if len(pods) == 0 {
			nodeProblems = append(nodeProblems, problem{text: fmt.Sprintf("daemonset %s: no pod on node %s yet", name, n.Name)})
			continue
		}
		for _, p := range pods {
			nodeProblems = append(nodeProblems, describePod(p))
		}
	}
	// Pods the controller created but the scheduler has not placed yet.
	for _, p := range byNode[""] {
		nodeProblems = append(nodeProblems, describePod(p))
	}

	countsOK := s.DesiredNumberScheduled == int32(len(targets)) &&
		s.UpdatedNumberScheduled == s.DesiredNumberScheduled &&
		s.NumberAvailable == s.DesiredNumberScheduled &&
		s.NumberMisscheduled == 0
	st.done = countsOK && ready == len(targets)
	if st.done {
		return st
	}
	st.add(kindSummary, "daemonset %s: Ready on %d of %d targeted node(s) %s (status: desired %d, updated %d, available %d, misscheduled %d)",
		name, ready, len(targets), nodeList(targets), s.DesiredNumberScheduled, s.UpdatedNumberScheduled, s.NumberAvailable, s.NumberMisscheduled)
	mismatch := s.DesiredNumberScheduled != int32(len(targets))
	if mismatch && ready == len(targets) {
		// The status disagrees with the nodes: the controller has not
		// caught up, or it schedules by rules this check does not model.
		st.add(kindOther, "daemonset %s: its controller wants %d pod(s) but %d node(s) match its node selector, affinity and tolerations",
			name, s.DesiredNumberScheduled, len(targets))
	}
	if len(nodeProblems) == 0 && !countsOK && !mismatch {
		st.add(kindOther, "daemonset %s: waiting for its controller to report the rollout (updated %d, available %d of %d)",
			name, s.UpdatedNumberScheduled, s.NumberAvailable, s.DesiredNumberScheduled)
	}
	st.problems = append(st.problems, nodeProblems...)
	return st
}

func nodeList(nodes []*corev1.Node) string {
	if len(nodes) == 0 {
		return "(none)"
	}
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	return "(" + strings.Join(names, ", ") + ")"
}

// daemonTolerations are the tolerations the DaemonSet controller adds to
// every daemon pod.
var daemonTolerations = []corev1.Toleration{
	{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
}

var hostNetworkToleration = corev1.Toleration{Key: corev1.TaintNodeNetworkUnavailable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}

// shouldRunOn reports whether the DaemonSet controller places a pod with
// this spec on node: node name, node selector, required node affinity and
// the NoSchedule/NoExecute taints.
func shouldRunOn(spec *corev1.PodSpec, node *corev1.Node) bool {
	if spec.NodeName != "" && spec.NodeName != node.Name {
		return false
	}
	if !labels.SelectorFromSet(spec.NodeSelector).Matches(labels.Set(node.Labels)) {
		return false
	}
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		if !nodeSelectorMatches(a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution, node) {
			return false
		}
	}
	tols := append(append([]corev1.Toleration(nil), spec.Tolerations...), daemonTolerations...)
	if spec.HostNetwork {
		tols = append(tols, hostNetworkToleration)
	}
	for i := range node.Spec.Taints {
		t := &node.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		tolerated := false
		for j := range tols {
			if tols[j].ToleratesTaint(t) {
				tolerated = true
				break
			}
		}
		if !tolerated {
			return false
		}
	}
	return true
}

// nodeSelectorMatches evaluates a required node selector: the terms are
// ORed, the requirements of a term ANDed; an empty term matches nothing.
func nodeSelectorMatches(ns *corev1.NodeSelector, node *corev1.Node) bool {
	for _, term := range ns.NodeSelectorTerms {
		if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
			continue
		}
		if requirementsMatch(term.MatchExpressions, labels.Set(node.Labels)) &&
			requirementsMatch(term.MatchFields, labels.Set{"metadata.name": node.Name}) {
			return true
		}
	}
	return false
}

var nodeSelectorOps = map[corev1.NodeSelectorOperator]selection.Operator{
	corev1.NodeSelectorOpIn:           selection.In,
	corev1.NodeSelectorOpNotIn:        selection.NotIn,
	corev1.NodeSelectorOpExists:       selection.Exists,
	corev1.NodeSelectorOpDoesNotExist: selection.DoesNotExist,
	corev1.NodeSelectorOpGt:           selection.GreaterThan,
	corev1.NodeSelectorOpLt:           selection.LessThan,
}

func requirementsMatch(reqs []corev1.NodeSelectorRequirement, set labels.Set) bool {
	for _, r := range reqs {
		op, ok := nodeSelectorOps[r.Operator]
		if !ok {
			return false
		}
		req, err := labels.NewRequirement(r.Key, op, r.Values)
		if err != nil || !req.Matches(set) {
			return false
		}
	}
	return true
}

// DaemonSetPodsCreated waits until each named DaemonSet ("namespace/name")
// has as many pods, in any state, as its controller wants (for the
// generation it has seen), and at least one per node it targets (a node
// labelled a moment ago may not be in the controller's count yet): the
// controller has created them. What comes after can then no longer stop
// their creation (an admission webhook that refuses pods until it serves,
// for one).
func DaemonSetPodsCreated(ctx context.Context, client kubernetes.Interface, names []string, timeout time.Duration, opts ...Option) error {
	what := "the pods of daemonsets " + braces("", names) + " to be created"
	return wait(ctx, client, what, timeout, opts, func(w *watchSet) func() status {
		dsStore := w.daemonSets("")
		podStore := w.pods("", "")
		nodeStore := w.nodes()
		return func() status {
			st := status{done: true}
			for _, name := range names {
				item, ok, _ := dsStore.GetByKey(name)
				ds, isDS := item.(*appsv1.DaemonSet)
				if !ok || !isDS {
					st.done = false
					st.add(kindOther, "daemonset %s not found", name)
					continue
				}
				if ds.Status.ObservedGeneration < ds.Generation {
					st.done = false
					st.add(kindOther, "daemonset %s: its controller has not yet seen generation %d (observed %d)", name, ds.Generation, ds.Status.ObservedGeneration)
					continue
				}
				pods, err := daemonPods(ds, podStore)
				if err != nil {
					st.done = false
					st.add(kindOther, "daemonset %s: %v", name, err)
					continue
				}
				// A daemon pod names its node in its affinity until the
				// scheduler binds it: count them against the number the
				// controller wants, do not place them.
				created := int32(len(pods))
				targets := ds.Status.DesiredNumberScheduled
				var targeted int32
				for _, n := range nodesOf(nodeStore) {
					if shouldRunOn(&ds.Spec.Template.Spec, n) {
						targeted++
					}
				}
				targets = max(targets, targeted)
				if created < targets {
					st.done = false
					st.add(kindOther, "daemonset %s: %d of %d pod(s) created", name, created, targets)
				}
			}
			return st
		}
	})
}

// daemonPods returns the pods of ds: those its selector matches that no
// other controller owns.
func daemonPods(ds *appsv1.DaemonSet, podStore cache.Store) ([]*corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("invalid selector: %w", err)
	}
	var out []*corev1.Pod
	for _, p := range podsOf(podStore, ds.Namespace, sel) {
		if ref := metav1.GetControllerOf(p); ref != nil && ds.UID != "" && ref.UID != ds.UID {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}
