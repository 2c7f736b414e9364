package components

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"

	"github.com/kubevirt/kubevirtci-go/internal/kubewait"
	"github.com/kubevirt/kubevirtci-go/internal/step"
)

// Applier applies objects to the cluster (kubeapply.Applier does, with
// server-side apply).
type Applier interface {
	Apply(ctx context.Context, objs []*unstructured.Unstructured) error
}

// Deploy renders multus, sriov-cni and the device plugin with p and
// applies them.
func Deploy(ctx context.Context, a Applier, client kubernetes.Interface, p Params, log *step.Logger) error {
	return log.Run("deploy multus, sriov-cni and the SR-IOV device plugin", func() error {
		objs, err := Render(p)
		if err != nil {
			return err
		}
		for _, o := range objs {
			log.Debugf("  %s %s", o.GetKind(), qualified(o))
		}
		return a.Apply(ctx, objs)
	})
}

// DeployInjector applies network-resources-injector when p has an image
// for it, once the pods that Deploy's DaemonSets want outside kube-system
// exist (client watches for them): its webhook, registered by its
// installer before the webhook serves, refuses pods in every namespace but
// kube-system until then (failurePolicy Fail), and a DaemonSet controller
// refused backs off. The injector then starts beside the DaemonSets
// instead of after them. Call it once the nodes the DaemonSets run on are
// labelled, so that their pods are wanted.
func DeployInjector(ctx context.Context, a Applier, client kubernetes.Interface, p Params, log *step.Logger) error {
	injector, err := RenderInjector(p)
	if err != nil || len(injector) == 0 {
		return err
	}
	return log.Run("deploy network-resources-injector", func() error {
		objs, err := Render(p)
		if err != nil {
			return err
		}
		var covered []string // DaemonSets the injector's webhook covers
		for _, o := range objs {
			if o.GetKind() == "DaemonSet" && o.GetNamespace() != injectorNamespace {
				covered = append(covered, qualified(o))
			}
		}
		if len(covered) > 0 {
			if err := kubewait.DaemonSetPodsCreated(ctx, client, covered, DefaultDaemonSetsTimeout); err != nil {
				return err
			}
		}
		for _, o := range injector {
			log.Debugf("  %s %s", o.GetKind(), qualified(o))
		}
		return a.Apply(ctx, injector)
	})
}

// injectorNamespace is where network-resources-injector runs, the one
// namespace its webhook leaves out.
const injectorNamespace = "kube-system"

// Default timeouts of the component waits.
const (
	DefaultDaemonSetsTimeout  = 5 * time.Minute
	DefaultAllocatableTimeout = 8 * time.Minute
	DefaultPodsTimeout        = 5 * time.Minute
)

// WaitOptions control Wait.
type WaitOptions struct {
	// Skip skips every component wait (e.g. when images arrive later).
	Skip bool
	// VFsPerNode maps each SR-IOV node to the number of VFs bound to the
	// VF driver on it: the allocatable count of the resource to wait for.
	VFsPerNode map[string]int64
	// Timeouts of each wait; zero means the default.
	DaemonSetsTimeout  time.Duration
	AllocatableTimeout time.Duration
	PodsTimeout        time.Duration
	// FailFast stops a wait as soon as image pulls are the
	// only problem left, instead of waiting for the images until the
	// timeout.
	FailFast bool
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Wait waits, in order, until the components' DaemonSets are available on
// the nodes they target, each SR-IOV node's allocatable resource equals its
// VF count, and all pods of the cluster are Ready. With an injector image
// it waits for network-resources-injector (which Deploy applied) and its
// webhook too, after the allocatable wait. With o.Skip it waits for
// nothing.
func Wait(ctx context.Context, client kubernetes.Interface, p Params, o WaitOptions, log *step.Logger) error {
	if o.Skip {
		log.Infof("skipping the component waits (as asked)")
		return nil
	}
	objs, err := Render(p)
	if err != nil {
		return err
	}
	var opts []kubewait.Option
	if o.FailFast {
		opts = append(opts, kubewait.FailFast())
	}
	if log != nil && log.Verbose {
		opts = append(opts, kubewait.WithProgress(func(s string) { log.Debugf("  waiting: %s", s) }))
	}

	var daemonSets []string
	for _, obj := range objs {
		if obj.GetKind() == "DaemonSet" {
			daemonSets = append(daemonSets, obj.GetNamespace()+"/"+obj.GetName())
		}
	}
	if err := log.Run("wait for the multus, sriov-cni and device plugin DaemonSets", func() error {
		return kubewait.DaemonSetsAvailable(ctx, client, "", kubewait.Names(daemonSets...), orDefault(o.DaemonSetsTimeout, DefaultDaemonSetsTimeout), opts...)
	}); err != nil {
		return err
	}

	if len(o.VFsPerNode) > 0 {
		nodes := make([]string, 0, len(o.VFsPerNode))
		for n := range o.VFsPerNode {
			nodes = append(nodes, n)
		}
		sort.Strings(nodes)
		for i, n := range nodes {
			nodes[i] = fmt.Sprintf("%s=%d", n, o.VFsPerNode[n])
		}
		name := fmt.Sprintf("wait for allocatable %s (%s)", p.Resource(), strings.Join(nodes, ", "))
		if err := log.Run(name, func() error {
			return kubewait.NodeAllocatable(ctx, client, o.VFsPerNode, p.Resource(), orDefault(o.AllocatableTimeout, DefaultAllocatableTimeout), opts...)
		}); err != nil {
			return err
		}
	}

	if p.InjectorImage != "" {
		if err := waitInjector(ctx, client, p, orDefault(o.PodsTimeout, DefaultPodsTimeout), log, opts...); err != nil {
			return err
		}
	}

	return log.Run("wait for all pods to be Ready", func() error {
		return kubewait.PodsReady(ctx, client, "", "", orDefault(o.PodsTimeout, DefaultPodsTimeout), opts...)
	})
}

// waitInjector waits until network-resources-injector's Deployment has
// rolled out and its webhook is registered.
func waitInjector(ctx context.Context, client kubernetes.Interface, p Params, timeout time.Duration, log *step.Logger, opts ...kubewait.Option) error {
	objs, err := RenderInjector(p)
	if err != nil || len(objs) == 0 {
		return err
	}
	return log.Run("wait for network-resources-injector and its webhook", func() error {
		if err := kubewait.Rollout(ctx, client, objs, timeout, opts...); err != nil {
			return err
		}
		return waitWebhook(ctx, client, InjectorWebhook, timeout)
	})
}

func qualified(o *unstructured.Unstructured) string {
	if o.GetNamespace() == "" {
		return o.GetName()
	}
	return o.GetNamespace() + "/" + o.GetName()
}
