package kubewait

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// podStore registers an informer on the pods of namespace ("" = all)
// matching selector ("" = all).
func (w *watchSet) pods(namespace, selector string) cache.Store {
	key := "pods"
	if namespace != "" {
		key += " in namespace " + namespace
	}
	if selector != "" {
		key += " with labels " + selector
	}
	return w.informer(key, func() cache.SharedIndexInformer {
		return coreinformers.NewFilteredPodInformer(w.client, namespace, 0, cache.Indexers{}, func(o *metav1.ListOptions) {
			o.LabelSelector = selector
		})
	})
}

func podsOf(store cache.Store, namespace string, sel labels.Selector) []*corev1.Pod {
	var out []*corev1.Pod
	for _, item := range store.List() {
		p, ok := item.(*corev1.Pod)
		if !ok || (namespace != "" && p.Namespace != namespace) || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// PodsReady waits until every pod in namespace ("" = all namespaces)
// matching the label selector ("" = all pods) is Ready. Pods that have
// finished (phase Succeeded or Failed) are not waited for; no matching pod
// at all counts as ready. On timeout the error lists each pod that is not
// ready, its node, and why.
func PodsReady(ctx context.Context, client kubernetes.Interface, namespace, selector string, timeout time.Duration, opts ...Option) error {
	sel, err := labels.Parse(selector)
	if err != nil {
		return fmt.Errorf("pod label selector %q: %w", selector, err)
	}
	what := "pods to be Ready"
	switch {
	case namespace == "" && selector == "":
		what = "all pods to be Ready"
	case namespace == "":
		what = fmt.Sprintf("pods with labels %s to be Ready", selector)
	case selector == "":
		what = fmt.Sprintf("pods in namespace %s to be Ready", namespace)
	default:
		what = fmt.Sprintf("pods in namespace %s with labels %s to be Ready", namespace, selector)
	}
	return wait(ctx, client, what, timeout, opts, func(w *watchSet) func() status {
		store := w.pods(namespace, selector)
		return func() status {
			return podsStatus(podsOf(store, namespace, sel))
		}
	})
}

func podsStatus(pods []*corev1.Pod) status {
	var st status
	notReady := 0
	for _, p := range pods {
		if podTerminal(p) || podReady(p) {
			continue
		}
		notReady++
		st.problems = append(st.problems, describePod(p))
	}
	st.done = notReady == 0
	return st
}
