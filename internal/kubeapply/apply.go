// Package kubeapply decodes Kubernetes manifests and applies them with
// server-side apply through client-go's dynamic client.
//
// Server-side apply with one field manager and Force makes applying
// idempotent: applying the same objects again changes nothing on the server,
// and fields other managers set on the same objects stay untouched.
package kubeapply

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"

	"github.com/kubevirt/kubevirtci-go/internal/kube"
)

// DefaultFieldManager is the field manager New uses when given none.
const DefaultFieldManager = "kubevirtci"

// DefaultEstablishTimeout bounds, by default, the wait for applied CRDs to be
// Established and for their kinds to appear in API discovery.
const DefaultEstablishTimeout = time.Minute

// CRDResource is the resource of CustomResourceDefinitions.
var CRDResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

var crdGroupKind = schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}

// Applier applies objects with server-side apply.
type Applier struct {
	dyn          dynamic.Interface
	mapper       meta.RESTMapper
	fieldManager string

	// EstablishTimeout bounds the wait for the CRDs of one Apply call to be
	// Established and for their kinds to be served. New sets
	// DefaultEstablishTimeout.
	EstablishTimeout time.Duration

	// Logf, when not nil, receives one line per applied object (for
	// verbose output).
	Logf func(format string, args ...any)
}

// New returns an Applier that applies through dyn, finds each kind's resource
// and scope through mapper, and owns the fields it applies as fieldManager
// (DefaultFieldManager when empty). When mapper caches discovery (it
// implements meta.ResettableRESTMapper, as the deferred discovery mapper of
// NewClients does), it is reset after CRDs have been applied.
func New(dyn dynamic.Interface, mapper meta.RESTMapper, fieldManager string) *Applier {
	if fieldManager == "" {
		fieldManager = DefaultFieldManager
	}
	return &Applier{dyn: dyn, mapper: mapper, fieldManager: fieldManager, EstablishTimeout: DefaultEstablishTimeout}
}

// NewClients builds the dynamic client and a REST mapper for cfg: the
// built-in kinds of BuiltinMapper first, then a deferred, memory-cached
// discovery mapper for every other kind (those of CRDs).
func NewClients(cfg *rest.Config) (dynamic.Interface, meta.ResettableRESTMapper, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("dynamic client for %s: %w", cfg.Host, err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("discovery client for %s: %w", cfg.Host, err)
	}
	discovered := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return dyn, meta.FirstHitRESTMapper{MultiRESTMapper: meta.MultiRESTMapper{BuiltinMapper(), discovered}}, nil
}

// BuiltinMapper maps the built-in kinds that manifests of cluster
// components hold to their resources and scopes without asking the server:
// Kubernetes' API fixes them for these versions (all GA since 1.16 and
// served by every release this tool brings up). Discovery costs a request
// per API group version (about 30 with Kubernetes 1.22), twice when CRDs
// are applied, which took seconds on a control plane still starting.
// Other kinds and versions are not matched.
func BuiltinMapper() meta.RESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	for _, k := range []struct {
		group, kind, resource string
		namespaced            bool
	}{
		{"", "Namespace", "namespaces", false},
		{"", "ServiceAccount", "serviceaccounts", true},
		{"", "ConfigMap", "configmaps", true},
		{"", "Secret", "secrets", true},
		{"", "Service", "services", true},
		{"apps", "DaemonSet", "daemonsets", true},
		{"apps", "Deployment", "deployments", true},
		{"apps", "StatefulSet", "statefulsets", true},
		{"rbac.authorization.k8s.io", "ClusterRole", "clusterroles", false},
		{"rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings", false},
		{"rbac.authorization.k8s.io", "Role", "roles", true},
		{"rbac.authorization.k8s.io", "RoleBinding", "rolebindings", true},
		{"apiextensions.k8s.io", "CustomResourceDefinition", "customresourcedefinitions", false},
		{"admissionregistration.k8s.io", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", false},
		{"admissionregistration.k8s.io", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", false},
		{"storage.k8s.io", "StorageClass", "storageclasses", false},
	} {
		gv := schema.GroupVersion{Group: k.group, Version: "v1"}
		scope := meta.RESTScopeRoot
		if k.namespaced {
			scope = meta.RESTScopeNamespace
		}
		m.AddSpecific(gv.WithKind(k.kind), gv.WithResource(k.resource), gv.WithResource(strings.ToLower(k.kind)), scope)
	}
	return m
}

// NewForConfig is New with the clients of NewClients.
func NewForConfig(cfg *rest.Config, fieldManager string) (*Applier, error) {
	dyn, mapper, err := NewClients(cfg)
	if err != nil {
		return nil, err
	}
	return New(dyn, mapper, fieldManager), nil
}

// Apply applies objs with server-side apply (Force, the Applier's field
// manager). CustomResourceDefinitions go first, then Namespaces, then the
// other objects in the order given; an object of a kind that one of the
// CRDs defines waits until they are Established and its kind is served, the
// others do not, and Apply returns once the CRDs are Established. The
// objects passed in are not modified. Apply stops at the first failure and
// names the object.
func (a *Applier) Apply(ctx context.Context, objs []*unstructured.Unstructured) error {
	for i, o := range objs {
		if o == nil {
			return fmt.Errorf("object %d is nil", i)
		}
		if o.GetKind() == "" || o.GetAPIVersion() == "" || o.GetName() == "" {
			return fmt.Errorf("object %d (%s): apiVersion, kind and metadata.name are required", i, describe(o))
		}
	}
	var crds, namespaces, rest []*unstructured.Unstructured
	for _, o := range objs {
		switch gk := o.GroupVersionKind().GroupKind(); {
		case gk == crdGroupKind:
			crds = append(crds, o)
		case gk == schema.GroupKind{Kind: "Namespace"}:
			namespaces = append(namespaces, o)
		default:
			rest = append(rest, o)
		}
	}

	// Kinds the applied CRDs define: a missing REST mapping for one of them
	// means discovery has not caught up yet, which is worth waiting for.
	pending := map[schema.GroupKind]bool{}
	for _, c := range crds {
		if err := a.applyOne(ctx, c, nil); err != nil {
			return err
		}
		group, _, _ := unstructured.NestedString(c.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(c.Object, "spec", "names", "kind")
		pending[schema.GroupKind{Group: group, Kind: kind}] = true
	}
	// Objects of other kinds do not wait for the CRDs; those of their
	// kinds do, and Apply returns once the CRDs are Established.
	established := len(crds) == 0
	waitCRDs := func() error {
		if established {
			return nil
		}
		if err := a.waitEstablished(ctx, crds); err != nil {
			return err
		}
		a.resetMapper()
		established = true
		return nil
	}
	for _, list := range [][]*unstructured.Unstructured{namespaces, rest} {
		for _, o := range list {
			if pending[o.GroupVersionKind().GroupKind()] {
				if err := waitCRDs(); err != nil {
					return err
				}
			}
			if err := a.applyOne(ctx, o, pending); err != nil {
				return err
			}
		}
	}
	return waitCRDs()
}

func (a *Applier) resetMapper() {
	if r, ok := a.mapper.(meta.ResettableRESTMapper); ok {
		r.Reset()
	}
}

func (a *Applier) timeout() time.Duration {
	if a.EstablishTimeout > 0 {
		return a.EstablishTimeout
	}
	return DefaultEstablishTimeout
}

// mapping finds the REST mapping of gvk. For a kind of a CRD applied in this
// call it retries for a bounded time, resetting the mapper each time, because
// API discovery serves a new kind shortly after the CRD is Established.
func (a *Applier) mapping(ctx context.Context, gvk schema.GroupVersionKind, pending map[schema.GroupKind]bool) (*meta.RESTMapping, error) {
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err == nil {
		return m, nil
	}
	if !meta.IsNoMatchError(err) {
		return nil, err
	}
	if !pending[gvk.GroupKind()] {
		return nil, fmt.Errorf("the server has no resource for kind %s in %s (is its CRD installed?): %w", gvk.Kind, gvk.GroupVersion(), err)
	}
	perr := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, a.timeout(), true, func(context.Context) (bool, error) {
		a.resetMapper()
		m, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil && meta.IsNoMatchError(err) {
			return false, nil
		}
		return true, err
	})
	if err != nil {
		return nil, fmt.Errorf("kind %s in %s not served %s after its CRD was Established: %w", gvk.Kind, gvk.GroupVersion(), a.timeout(), err)
	}
	if perr != nil {
		return nil, perr
	}
	return m, nil
}

func (a *Applier) applyOne(ctx context.Context, o *unstructured.Unstructured, pending map[schema.GroupKind]bool) error {
	gvk := o.GroupVersionKind()
	m, err := a.mapping(ctx, gvk, pending)
	if err != nil {
		return fmt.Errorf("apply %s: %w", describe(o), err)
	}
	cfg := applyConfiguration(o)
	var ri dynamic.ResourceInterface
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := cfg.GetNamespace()
		if ns == "" {
			return fmt.Errorf("apply %s: %s is namespaced but the object has no metadata.namespace", describe(o), gvk.Kind)
		}
		ri = a.dyn.Resource(m.Resource).Namespace(ns)
	} else {
		cfg.SetNamespace("")
		ri = a.dyn.Resource(m.Resource)
	}
	if _, err := ri.Apply(ctx, cfg.GetName(), cfg, metav1.ApplyOptions{FieldManager: a.fieldManager, Force: true}); err != nil {
		return fmt.Errorf("apply %s: %w", describe(o), err)
	}
	if a.Logf != nil {
		a.Logf("applied %s", describe(o))
	}
	return nil
}

// applyConfiguration returns a copy of o without the fields a server owns,
// which an apply request must not carry (managedFields) or should not
// (resourceVersion would turn the apply into a conditional update).
func applyConfiguration(o *unstructured.Unstructured) *unstructured.Unstructured {
	c := o.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(c.Object, "status")
	return c
}

// waitEstablished watches CRDs until every one in crds is Established. A CRD
// whose names are not accepted fails at once with the server's reason.
//
// The watch is an informer of its own rather than watchtools.UntilWithSync,
// whose reflector reports the end of its watch, when the wait is over and
// its context canceled, as an error on the process's log ("Failed to
// watch ... context canceled"): a scary line on every cluster-up. Here a
// watch error is kept for the timeout message and not printed.
func (a *Applier) waitEstablished(ctx context.Context, crds []*unstructured.Unstructured) error {
	want := map[string]bool{}
	for _, c := range crds {
		want[c.GetName()] = true
	}
	ri := a.dyn.Resource(CRDResource)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return ri.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return ri.Watch(ctx, opts)
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &unstructured.Unstructured{}, 0, cache.Indexers{})
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}); err != nil {
		return fmt.Errorf("watching CRDs: %w", err)
	}
	var mu sync.Mutex
	watchErr := ""
	if err := inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, _ *cache.Reflector, err error) {
		// Ended by this wait, or a watch the reflector renews: no problem.
		if ctx.Err() != nil || kube.RenewedWatch(err) {
			return
		}
		mu.Lock()
		watchErr = err.Error()
		mu.Unlock()
	}); err != nil {
		return fmt.Errorf("watching CRDs: %w", err)
	}
	state := func(name string) *unstructured.Unstructured {
		o, ok, _ := inf.GetStore().GetByKey(name)
		if !ok {
			return nil
		}
		u, _ := o.(*unstructured.Unstructured)
		return u
	}
	established := func() (bool, error) {
		for name := range want {
			c := state(name)
			if c == nil {
				return false, nil
			}
			if st, reason := crdCondition(c, "NamesAccepted"); st == "False" {
				return false, fmt.Errorf("CRD %s: names not accepted: %s", name, reason)
			}
			if st, _ := crdCondition(c, "Established"); st != "True" {
				return false, nil
			}
		}
		return true, nil
	}

	wctx, cancel := context.WithTimeout(ctx, a.timeout())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		inf.RunWithContext(wctx)
	}()
	// The informer is stopped before this returns: nothing of it runs on.
	defer func() {
		cancel()
		<-stopped
	}()
	for {
		select {
		case <-changed:
			if !inf.HasSynced() {
				continue
			}
			done, err := established()
			if err != nil {
				return err
			}
			if done {
				return nil
			}
		case <-wctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("waiting for CRDs to be Established: %w", ctx.Err())
			}
			msg := fmt.Sprintf("CRDs not Established after %s: %s", a.timeout(), strings.Join(notEstablished(want, state), ", "))
			mu.Lock()
			if watchErr != "" {
				msg += " (watching CRDs failed: " + watchErr + ")"
			}
			mu.Unlock()
			return errors.New(msg)
		}
	}
}

// notEstablished describes, sorted, each CRD of want that state (the
// watched CRDs by name) does not have Established.
func notEstablished(want map[string]bool, state func(string) *unstructured.Unstructured) []string {
	var missing []string
	for name := range want {
		c := state(name)
		if c == nil {
			missing = append(missing, name+" (not found)")
			continue
		}
		st, reason := crdCondition(c, "Established")
		if st == "True" {
			continue
		}
		if st == "" {
			st = "no condition yet"
		}
		if reason != "" {
			st += ", " + reason
		}
		missing = append(missing, fmt.Sprintf("%s (Established: %s)", name, st))
	}
	sort.Strings(missing)
	return missing
}

// crdCondition returns the status of the condition typ of a CRD and its
// "reason: message".
func crdCondition(c *unstructured.Unstructured, typ string) (status, detail string) {
	conds, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
	for _, ci := range conds {
		m, ok := ci.(map[string]interface{})
		if !ok || m["type"] != typ {
			continue
		}
		s, _ := m["status"].(string)
		r, _ := m["reason"].(string)
		msg, _ := m["message"].(string)
		detail = strings.Trim(r+": "+msg, ": ")
		return s, detail
	}
	return "", ""
}

// describe names an object as "Kind namespace/name" or "Kind name".
func describe(o *unstructured.Unstructured) string {
	kind := o.GetKind()
	if kind == "" {
		kind = "object"
	}
	if ns := o.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s %s/%s", kind, ns, o.GetName())
	}
	return fmt.Sprintf("%s %s", kind, o.GetName())
}
