package kubewait

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
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
// its kubelet gives. With FailFast it also watches the pods on the nodes
// that are not Ready (on such a node only DaemonSet pods run: the pod
// network, kube-proxy): one that will not heal (an image that cannot be
// pulled, a crash loop) keeps its node from becoming Ready for good, and
// ends the wait with ErrWontHeal, naming the node and the pod (a crash
// loop after the grace, as a pull that may heal).
func NodesReady(ctx context.Context, client kubernetes.Interface, timeout time.Duration, opts ...Option) error {
	return wait(ctx, client, "all nodes to be Ready", timeout, opts, func(w *watchSet) func() status {
		store := w.nodes()
		podStore := failFastPods(w, opts)
		return func() status {
			var st status
			nodes := nodesOf(store)
			if len(nodes) == 0 {
				st.add(kindOther, "no node is registered yet")
				return st
			}
			st.done = true
			for _, n := range nodes {
				ok, why := nodeReady(n)
				if ok {
					continue
				}
				st.done = false
				st.addNode(podStore, n.Name, fmt.Sprintf("node %s: %s", n.Name, why))
			}
			return st
		}
	})
}

// failFastPods watches every pod when opts ask for FailFast (nil otherwise),
// for addNode.
func failFastPods(w *watchSet, opts []Option) cache.Store {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if !o.failFast {
		return nil
	}
	return w.pods("", "")
}

// addNode adds line, the reason node is not yet as waited for; when pods
// (nil: not watched) shows a pod on node that will not heal, the pod is
// the reason: its problem is added instead, after line.
func (s *status) addNode(pods cache.Store, node, line string) {
	stuck := stuckPodsOn(pods, node)
	if len(stuck) == 0 {
		s.add(kindOther, "%s", line)
		return
	}
	for _, p := range stuck {
		p.text = line + "; on it, " + p.text
		s.problems = append(s.problems, p)
	}
}

// nodeStartCrashes is how often a pod on a node that is not Ready may
// restart before its crash loop is taken for one that will not heal.
const nodeStartCrashes = 4

// maxRestarts is the largest restart count of p's containers.
func maxRestarts(p *corev1.Pod) int32 {
	var n int32
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		n = max(n, cs.RestartCount)
	}
	return n
}

// stuckPodsOn describes the pods on node that wait in a state that does
// not heal by waiting (nil store: none).
func stuckPodsOn(store cache.Store, node string) []problem {
	if store == nil {
		return nil
	}
	var out []problem
	for _, p := range podsOf(store, "", labels.Everything()) {
		if p.Spec.NodeName != node || podTerminal(p) || podReady(p) {
			continue
		}
		d := describePod(p)
		if d.kind != kindStuck {
			continue
		}
		// While its node comes up, a pod network's pod crashes until
		// kube-proxy has made the API server's service address work on
		// the node, which takes a while on a busy host: a crash loop
		// counts once it has restarted nodeStartCrashes times (the
		// kubelet's back-offs add up to 150 s by then), and gets the
		// grace after that; an image that does not exist does not wait.
		if len(d.logs) > 0 && d.stuck == stuckNow {
			if maxRestarts(p) < nodeStartCrashes {
				continue
			}
			d.stuck = stuckAfterGrace
		}
		out = append(out, d)
	}
	return out
}

// NodeAllocatable waits until, for each node named in want, the node's
// allocatable amount of resource (e.g. "kubevirt.io/sriov_net") equals the
// wanted count. On timeout the error lists each node that differs, with
// what it has and what is wanted. An empty want returns at once. With
// FailFast, a pod on such a node that will not heal (the device plugin's,
// crash-looping) ends the wait as in NodesReady.
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
		podStore := failFastPods(w, opts)
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
				st.addNode(podStore, name, fmt.Sprintf("node %s: allocatable %s is %d, want %d%s", name, resource, have, want[name], note))
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
