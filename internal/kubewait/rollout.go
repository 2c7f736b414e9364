package kubewait

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

func (w *watchSet) deployments(namespace string) cache.Store {
	return w.informer("deployments in namespace "+namespace, func() cache.SharedIndexInformer {
		return appsinformers.NewDeploymentInformer(w.client, namespace, 0, cache.Indexers{})
	})
}

func (w *watchSet) statefulSets(namespace string) cache.Store {
	return w.informer("statefulsets in namespace "+namespace, func() cache.SharedIndexInformer {
		return appsinformers.NewStatefulSetInformer(w.client, namespace, 0, cache.Indexers{})
	})
}

type workload struct {
	kind, namespace, name string
}

// Rollout waits until every Deployment, DaemonSet and StatefulSet among
// objs (group apps; other objects are ignored) has rolled out its latest
// generation:
//
//   - Deployment: generation observed, all replicas updated, no old
//     replicas left, all updated replicas available;
//   - DaemonSet: as DaemonSetsAvailable;
//   - StatefulSet: generation observed, all replicas ready and, with the
//     RollingUpdate strategy, updated up to the partition (without a
//     partition: current revision = update revision).
//
// On timeout the error names each workload that is not done and, for each
// of its pods that is not Ready, the node and why.
func Rollout(ctx context.Context, client kubernetes.Interface, objs []*unstructured.Unstructured, timeout time.Duration, opts ...Option) error {
	var ws []workload
	var names []string
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		if gvk.Group != "apps" {
			continue
		}
		switch gvk.Kind {
		case "Deployment", "DaemonSet", "StatefulSet":
		default:
			continue
		}
		if o.GetNamespace() == "" {
			return fmt.Errorf("rollout of %s %s: the object has no metadata.namespace", gvk.Kind, o.GetName())
		}
		ws = append(ws, workload{kind: gvk.Kind, namespace: o.GetNamespace(), name: o.GetName()})
		names = append(names, fmt.Sprintf("%s %s/%s", gvk.Kind, o.GetNamespace(), o.GetName()))
	}
	if len(ws) == 0 {
		return nil
	}
	what := "rollout of " + joinNames(names)
	return wait(ctx, client, what, timeout, opts, func(w *watchSet) func() status {
		type stores struct{ obj, pods cache.Store }
		var nodeStore cache.Store
		st := make([]stores, len(ws))
		for i, wl := range ws {
			switch wl.kind {
			case "Deployment":
				st[i].obj = w.deployments(wl.namespace)
			case "StatefulSet":
				st[i].obj = w.statefulSets(wl.namespace)
			case "DaemonSet":
				st[i].obj = w.daemonSets(wl.namespace)
				nodeStore = w.nodes()
			}
			st[i].pods = w.pods(wl.namespace, "")
		}
		return func() status {
			all := status{done: true}
			for i, wl := range ws {
				item, ok, _ := st[i].obj.GetByKey(wl.namespace + "/" + wl.name)
				if !ok {
					all.done = false
					all.add(kindOther, "%s %s/%s not found", wl.kind, wl.namespace, wl.name)
					continue
				}
				var s status
				switch o := item.(type) {
				case *appsv1.Deployment:
					s = deploymentStatus(o, st[i].pods)
				case *appsv1.StatefulSet:
					s = statefulSetStatus(o, st[i].pods)
				case *appsv1.DaemonSet:
					s = daemonSetStatus(o, nodesOf(nodeStore), st[i].pods)
				}
				all.done = all.done && s.done
				all.merge(s)
			}
			return all
		}
	})
}

func joinNames(names []string) string {
	if len(names) <= 3 {
		s := ""
		for i, n := range names {
			if i > 0 {
				s += ", "
			}
			s += n
		}
		return s
	}
	return fmt.Sprintf("%s, %s and %d more", names[0], names[1], len(names)-2)
}

// notReadyPods adds a problem for each pod matching sel that is not Ready.
func notReadyPods(st *status, store cache.Store, namespace string, selector *metav1.LabelSelector) {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		st.add(kindOther, "invalid selector: %v", err)
		return
	}
	if sel.Empty() {
		sel = labels.Nothing()
	}
	for _, p := range podsOf(store, namespace, sel) {
		if !podReady(p) && !podTerminal(p) {
			st.problems = append(st.problems, describePod(p))
		}
	}
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

func deploymentStatus(d *appsv1.Deployment, pods cache.Store) status {
	var st status
	name := "deployment " + d.Namespace + "/" + d.Name
	s := d.Status
	if s.ObservedGeneration < d.Generation {
		st.add(kindOther, "%s: its controller has not yet seen generation %d (observed %d)", name, d.Generation, s.ObservedGeneration)
		return st
	}
	for _, c := range s.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			st.add(kindOther, "%s: progress deadline exceeded: %s", name, oneLine(c.Message))
		}
	}
	want := replicas(d.Spec.Replicas)
	switch {
	case s.UpdatedReplicas < want:
		st.add(kindSummary, "%s: %d of %d replicas updated", name, s.UpdatedReplicas, want)
	case s.Replicas > s.UpdatedReplicas:
		st.add(kindSummary, "%s: %d old replicas pending termination", name, s.Replicas-s.UpdatedReplicas)
	case s.AvailableReplicas < s.UpdatedReplicas:
		st.add(kindSummary, "%s: %d of %d updated replicas available", name, s.AvailableReplicas, s.UpdatedReplicas)
	default:
		if len(st.problems) == 0 {
			st.done = true
			return st
		}
	}
	n := len(st.problems)
	notReadyPods(&st, pods, d.Namespace, d.Spec.Selector)
	if len(st.problems) == n {
		st.add(kindOther, "%s: waiting for its controller to create or update pods", name)
	}
	return st
}

func statefulSetStatus(s *appsv1.StatefulSet, pods cache.Store) status {
	var st status
	name := "statefulset " + s.Namespace + "/" + s.Name
	ss := s.Status
	if ss.ObservedGeneration < s.Generation {
		st.add(kindOther, "%s: its controller has not yet seen generation %d (observed %d)", name, s.Generation, ss.ObservedGeneration)
		return st
	}
	want := replicas(s.Spec.Replicas)
	switch {
	case ss.ReadyReplicas < want:
		st.add(kindSummary, "%s: %d of %d replicas ready", name, ss.ReadyReplicas, want)
	case s.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType &&
		s.Spec.UpdateStrategy.RollingUpdate != nil && s.Spec.UpdateStrategy.RollingUpdate.Partition != nil:
		if p := *s.Spec.UpdateStrategy.RollingUpdate.Partition; ss.UpdatedReplicas < want-p {
			st.add(kindSummary, "%s: %d of %d replicas updated (partition %d)", name, ss.UpdatedReplicas, want-p, p)
		} else {
			st.done = true
			return st
		}
	case s.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType && ss.UpdateRevision != ss.CurrentRevision:
		st.add(kindSummary, "%s: %d of %d replicas at update revision %s", name, ss.UpdatedReplicas, want, ss.UpdateRevision)
	default:
		st.done = true
		return st
	}
	n := len(st.problems)
	notReadyPods(&st, pods, s.Namespace, s.Spec.Selector)
	if len(st.problems) == n {
		st.add(kindOther, "%s: waiting for its controller to create or update pods", name)
	}
	return st
}
