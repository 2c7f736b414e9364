package kubewait

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

func (w *watchSet) nodes() cache.Store {
	return w.informer("nodes", func() cache.SharedIndexInformer {
		return coreinformers.NewNodeInformer(w.client, 0, cache.Indexers{})
	})
}

func nodesOf(store cache.Store) []*corev1.Node {
	var out []*corev1.Node
	for _, item := range store.List() {
		if n, ok := item.(*corev1.Node); ok {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func nodeReady(n *corev1.Node) (bool, string) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue, fmt.Sprintf("Ready=%s%s", c.Status, detail(c.Reason, c.Message))
		}
	}
	return false, "no Ready condition yet"
}

// NodesReady waits until at least one node is registered and every node is
// Ready. On timeout the error names each node that is not, with the reason
// its kubelet gives.
func NodesReady(ctx context.Context, client kubernetes.Interface, timeout time.Duration, opts ...Option) error {
	return wait(ctx, client, "all nodes to be Ready", timeout, opts, func(w *watchSet) func() status {
		store := w.nodes()
		return func() status {
			var st status
			nodes := nodesOf(store)
			if len(nodes) == 0 {
				st.add(kindOther, "no node is registered yet")
				return st
			}
			st.done = true
			for _, n := range nodes {
				if ok, why := nodeReady(n); !ok {
					st.done = false
					st.add(kindOther, "node %s: %s", n.Name, why)
				}
			}
			return st
		}
	})
}

// NodeAllocatable waits until, for each node named in want, the node's
// allocatable amount of resource (e.g. "kubevirt.io/sriov_net") equals the
// wanted count. On timeout the error lists each node that differs, with
// what it has and what is wanted. An empty want returns at once.
func NodeAllocatable(ctx context.Context, client kubernetes.Interface, want map[string]int64, resource string, timeout time.Duration, opts ...Option) error {
	if resource == "" {
		return fmt.Errorf("NodeAllocatable: empty resource name")
	}
	if len(want) == 0 {
		return nil
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	what := fmt.Sprintf("allocatable %s on node(s) %s", resource, braces("", names))
	return wait(ctx, client, what, timeout, opts, func(w *watchSet) func() status {
		store := w.nodes()
		return func() status {
			st := status{done: true}
			for _, name := range names {
				item, ok, _ := store.GetByKey(name)
				if !ok {
					st.done = false
					st.add(kindOther, "node %s: not found", name)
					continue
				}
				n := item.(*corev1.Node)
				have, advertised := allocatable(n, resource)
				if have == want[name] {
					continue
				}
				st.done = false
				note := ""
				if !advertised {
					note = " (not advertised: is the device plugin running on this node?)"
				}
				st.add(kindOther, "node %s: allocatable %s is %d, want %d%s", name, resource, have, want[name], note)
			}
			return st
		}
	})
}

func allocatable(n *corev1.Node, res string) (int64, bool) {
	q, ok := n.Status.Allocatable[corev1.ResourceName(res)]
	if !ok {
		return 0, false
	}
	return q.Value(), true
}
