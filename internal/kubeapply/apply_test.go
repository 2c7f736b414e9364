package kubeapply

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"
)

var (
	gvkCRD = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
	gvkNAD = schema.GroupVersionKind{Group: "k8s.cni.cncf.io", Version: "v1", Kind: "NetworkAttachmentDefinition"}
	gvkNS  = schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}
	gvkCM  = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	gvkDS  = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}
	gvkCR  = schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}

	// The fake's object tracker finds kinds by guessing the plural from
	// the kind, so the test maps the kind to the guessed plural; a real
	// server's discovery says "network-attachment-definitions".
	gvrNAD = schema.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1", Resource: "networkattachmentdefinitions"}
	gvrNS  = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	gvrCM  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrDS  = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
	gvrCR  = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}
)

// fakeMapper is a discovery-backed mapper stand-in: it knows the kinds of
// CRDs only after Reset was called once the CRD was Established (as a
// cached discovery mapper would).
type fakeMapper struct {
	meta.RESTMapper
	mu       sync.Mutex
	resets   int
	crdReady func() bool
	knowsNAD bool
}

func (m *fakeMapper) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resets++
	if m.crdReady() {
		m.knowsNAD = true
	}
}

func (m *fakeMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	m.mu.Lock()
	known := m.knowsNAD
	m.mu.Unlock()
	if gk == gvkNAD.GroupKind() && !known {
		return nil, &meta.NoKindMatchError{GroupKind: gk, SearchedVersions: versions}
	}
	return m.RESTMapper.RESTMapping(gk, versions...)
}

// applyingDynamic is the fake dynamic client with an Apply that passes its
// options on: the fake's own Apply drops them (field manager and force),
// which would make field management untestable.
type applyingDynamic struct {
	*dynfake.FakeDynamicClient
}

func (d applyingDynamic) Resource(gvr schema.GroupVersionResource) dynamic.NamespaceableResourceInterface {
	base := d.FakeDynamicClient.Resource(gvr)
	return applyingNamespaceable{applyingResource: applyingResource{ResourceInterface: base, fake: d.FakeDynamicClient, gvr: gvr}, base: base}
}

type applyingNamespaceable struct {
	applyingResource
	base dynamic.NamespaceableResourceInterface
}

func (r applyingNamespaceable) Namespace(ns string) dynamic.ResourceInterface {
	return applyingResource{ResourceInterface: r.base.Namespace(ns), fake: r.fake, gvr: r.gvr, ns: ns}
}

type applyingResource struct {
	dynamic.ResourceInterface
	fake *dynfake.FakeDynamicClient
	gvr  schema.GroupVersionResource
	ns   string
}

func (r applyingResource) Apply(ctx context.Context, name string, obj *unstructured.Unstructured, opts metav1.ApplyOptions, sub ...string) (*unstructured.Unstructured, error) {
	if len(sub) > 0 {
		return nil, fmt.Errorf("test fake: apply to subresources is not supported")
	}
	data, err := runtime.Encode(unstructured.UnstructuredJSONScheme, obj)
	if err != nil {
		return nil, err
	}
	action := clienttesting.NewPatchActionWithOptions(r.gvr, r.ns, name, types.ApplyPatchType, data, opts.ToPatchOptions())
	if r.ns == "" {
		action = clienttesting.NewRootPatchActionWithOptions(r.gvr, name, types.ApplyPatchType, data, opts.ToPatchOptions())
	}
	ret, err := r.fake.Invokes(action, &metav1.Status{Status: "apply failed"})
	if err != nil {
		return nil, err
	}
	u, ok := ret.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("test fake: apply returned %T", ret)
	}
	return u, nil
}

type cluster struct {
	dyn     applyingDynamic
	tracker clienttesting.ObjectTracker
	mapper  *fakeMapper
	// crdWatch receives a value when a watch on CRDs starts.
	crdWatch chan struct{}
}

// newCluster returns a fake dynamic client whose object tracker does real
// server-side apply (field management with a deduced schema), a mapper, and
// a channel signalled when a CRD watch starts.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, gvk := range []schema.GroupVersionKind{gvkCRD, gvkNAD, gvkNS, gvkCM, gvkDS, gvkCR} {
		scheme.AddKnownTypeWithName(gvk, &unstructured.Unstructured{})
		scheme.AddKnownTypeWithName(gvk.GroupVersion().WithKind(gvk.Kind+"List"), &unstructured.UnstructuredList{})
	}
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(scheme, map[schema.GroupVersionResource]string{
		CRDResource: "CustomResourceDefinitionList",
		gvrNAD:      "NetworkAttachmentDefinitionList",
	})
	tracker := clienttesting.NewFieldManagedObjectTracker(scheme, serializer.NewCodecFactory(scheme).UniversalDecoder(), managedfields.NewDeducedTypeConverter())
	c := &cluster{dyn: applyingDynamic{dyn}, tracker: tracker, crdWatch: make(chan struct{}, 10)}
	dyn.PrependReactor("*", "*", clienttesting.ObjectReaction(tracker))
	dyn.PrependWatchReactor("*", func(a clienttesting.Action) (bool, watch.Interface, error) {
		w, err := tracker.Watch(a.GetResource(), a.GetNamespace())
		if a.GetResource() == CRDResource {
			c.crdWatch <- struct{}{}
		}
		return true, w, err
	})

	rm := meta.NewDefaultRESTMapper(nil)
	rm.Add(gvkCRD, meta.RESTScopeRoot)
	rm.Add(gvkNS, meta.RESTScopeRoot)
	rm.Add(gvkCR, meta.RESTScopeRoot)
	rm.Add(gvkCM, meta.RESTScopeNamespace)
	rm.Add(gvkDS, meta.RESTScopeNamespace)
	rm.AddSpecific(gvkNAD, gvrNAD, gvrNAD.GroupVersion().WithResource("network-attachment-definition"), meta.RESTScopeNamespace)
	c.mapper = &fakeMapper{RESTMapper: rm, crdReady: func() bool {
		o, err := tracker.Get(CRDResource, "", "network-attachment-definitions.k8s.cni.cncf.io")
		if err != nil {
			return false
		}
		st, _ := crdCondition(o.(*unstructured.Unstructured), "Established")
		return st == "True"
	}}
	return c
}

// establishAfterWatch marks the CRD Established once the applier watches
// CRDs, the way the API server does shortly after creating it.
func (c *cluster) establishAfterWatch(t *testing.T, name string, status string) {
	go func() {
		select {
		case <-c.crdWatch:
		case <-time.After(5 * time.Second):
			return
		}
		o, err := c.tracker.Get(CRDResource, "", name)
		if err != nil {
			t.Errorf("get CRD: %v", err)
			return
		}
		u := o.(*unstructured.Unstructured).DeepCopy()
		conds := []interface{}{
			map[string]interface{}{"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
			map[string]interface{}{"type": "Established", "status": status, "reason": "InitialNamesAccepted"},
		}
		if status == "Conflict" {
			conds = []interface{}{map[string]interface{}{"type": "NamesAccepted", "status": "False", "reason": "ListKindConflict", "message": "kind list is already in use"}}
		}
		_ = unstructured.SetNestedSlice(u.Object, conds, "status", "conditions")
		if err := c.tracker.Update(CRDResource, u, "", metav1.UpdateOptions{FieldManager: "apiextensions-apiserver"}); err != nil {
			t.Errorf("update CRD status: %v", err)
		}
	}()
}

const testManifests = `apiVersion: v1
kind: ConfigMap
metadata:
  name: sriovdp-config
  namespace: sriov
data:
  config.json: '{"resourceList":[]}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: sriov-net
  namespace: sriov
spec:
  config: '{"type":"sriov"}'
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-sriov-cni-ds-amd64
  namespace: sriov
  labels: {app: sriov-cni}
spec:
  selector: {matchLabels: {name: sriov-cni}}
  template:
    metadata: {labels: {name: sriov-cni}}
    spec:
      containers:
      - name: kube-sriov-cni
        image: ghcr.io/k8snetworkplumbingwg/sriov-cni:v2.7.0
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: multus
  namespace: ignored-for-cluster-scoped
rules:
- apiGroups: ["k8s.cni.cncf.io"]
  resources: ["*"]
  verbs: ["*"]
---
apiVersion: v1
kind: Namespace
metadata:
  name: sriov
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: network-attachment-definitions.k8s.cni.cncf.io
spec:
  group: k8s.cni.cncf.io
  scope: Namespaced
  names:
    plural: network-attachment-definitions
    kind: NetworkAttachmentDefinition
  versions:
  - name: v1
    served: true
    storage: true
`

func decodeTest(t *testing.T, s string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := Decode(strings.NewReader(s), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// snapshot returns every stored object of the test kinds.
func (c *cluster) snapshot(t *testing.T) map[string]*unstructured.Unstructured {
	t.Helper()
	out := map[string]*unstructured.Unstructured{}
	for _, x := range []struct {
		gvr      schema.GroupVersionResource
		gvk      schema.GroupVersionKind
		ns, name string
	}{
		{CRDResource, gvkCRD, "", "network-attachment-definitions.k8s.cni.cncf.io"},
		{gvrNS, gvkNS, "", "sriov"},
		{gvrCR, gvkCR, "", "multus"},
		{gvrCM, gvkCM, "sriov", "sriovdp-config"},
		{gvrDS, gvkDS, "sriov", "kube-sriov-cni-ds-amd64"},
		{gvrNAD, gvkNAD, "sriov", "sriov-net"},
	} {
		o, err := c.tracker.Get(x.gvr, x.ns, x.name)
		if err != nil {
			t.Fatalf("%s %s/%s not stored: %v", x.gvk.Kind, x.ns, x.name, err)
		}
		out[x.gvk.Kind] = o.(*unstructured.Unstructured).DeepCopy()
	}
	return out
}

// applies returns "Kind ns/name" of each apply patch, in order.
func applies(actions []clienttesting.Action) ([]string, []clienttesting.PatchActionImpl) {
	var names []string
	var patches []clienttesting.PatchActionImpl
	for _, a := range actions {
		p, ok := a.(clienttesting.PatchActionImpl)
		if !ok {
			continue
		}
		names = append(names, p.GetResource().Resource+" "+p.GetNamespace()+"/"+p.GetName())
		patches = append(patches, p)
	}
	return names, patches
}

func TestApplyOrderFieldManagerAndIdempotence(t *testing.T) {
	c := newCluster(t)
	a := New(c.dyn, c.mapper, "kubevirtci")
	a.EstablishTimeout = 5 * time.Second
	objs := decodeTest(t, testManifests)
	before := decodeTest(t, testManifests)

	c.establishAfterWatch(t, "network-attachment-definitions.k8s.cni.cncf.io", "True")
	ctx := context.Background()
	if err := a.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(objs, before) {
		t.Error("Apply modified the objects passed in")
	}

	names, patches := applies(c.dyn.Actions())
	want := []string{
		"customresourcedefinitions /network-attachment-definitions.k8s.cni.cncf.io",
		"namespaces /sriov",
		"configmaps sriov/sriovdp-config",
		"networkattachmentdefinitions sriov/sriov-net",
		"daemonsets sriov/kube-sriov-cni-ds-amd64",
		"clusterroles /multus",
	}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("apply order:\n got %q\nwant %q", names, want)
	}
	for _, p := range patches {
		if p.GetPatchType() != types.ApplyPatchType {
			t.Errorf("%s: patch type %s, want server-side apply", p.GetName(), p.GetPatchType())
		}
		if p.PatchOptions.FieldManager != "kubevirtci" || p.PatchOptions.Force == nil || !*p.PatchOptions.Force {
			t.Errorf("%s: patch options %+v, want field manager kubevirtci and force", p.GetName(), p.PatchOptions)
		}
	}
	if c.mapper.resets == 0 {
		t.Error("the mapper was not reset after the CRD was Established")
	}

	first := c.snapshot(t)
	if mf := first["DaemonSet"].GetManagedFields(); len(mf) != 1 || mf[0].Manager != "kubevirtci" || mf[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Fatalf("DaemonSet managed fields = %+v, want one Apply entry by kubevirtci", mf)
	}
	if ns := first["ClusterRole"].GetNamespace(); ns != "" {
		t.Errorf("cluster-scoped ClusterRole stored with namespace %q", ns)
	}

	// Apply again: nothing changes, not even managed fields timestamps.
	c.dyn.ClearActions()
	if err := a.Apply(ctx, decodeTest(t, testManifests)); err != nil {
		t.Fatal(err)
	}
	second := c.snapshot(t)
	// The fake tracker stores the ConfigMap with kind Namespace (both kinds
	// of core v1 are registered with one Go type, Unstructured, and it
	// takes the first), so to it every apply of the ConfigMap changes the
	// kind and renews the entry's time, which differs when the two applies
	// fall in different seconds. The rest of the ConfigMap must not change.
	for _, o := range []*unstructured.Unstructured{first["ConfigMap"], second["ConfigMap"]} {
		mf := o.GetManagedFields()
		for i := range mf {
			mf[i].Time = nil
		}
		o.SetManagedFields(mf)
	}
	for kind, o := range first {
		if !equality.Semantic.DeepEqual(o, second[kind]) {
			t.Errorf("%s changed on the second apply:\nfirst  %v\nsecond %v", kind, o.Object, second[kind].Object)
		}
	}
	for _, a := range c.dyn.Actions() {
		switch a.GetVerb() {
		case "patch", "list", "watch":
		default:
			t.Errorf("second apply made a %s call on %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

func TestApplyKeepsOtherManagersFieldsAndUpdatesOwn(t *testing.T) {
	c := newCluster(t)
	a := New(c.dyn, c.mapper, "")
	a.EstablishTimeout = 5 * time.Second
	c.establishAfterWatch(t, "network-attachment-definitions.k8s.cni.cncf.io", "True")
	ctx := context.Background()
	if err := a.Apply(ctx, decodeTest(t, testManifests)); err != nil {
		t.Fatal(err)
	}

	// Another manager adds a label to the DaemonSet.
	o, _ := c.tracker.Get(gvrDS, "sriov", "kube-sriov-cni-ds-amd64")
	u := o.(*unstructured.Unstructured).DeepCopy()
	u.SetLabels(map[string]string{"app": "sriov-cni", "team": "net"})
	if err := c.tracker.Update(gvrDS, u, "sriov", metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}

	// The provider applies a new image.
	changed := strings.Replace(testManifests, "sriov-cni:v2.7.0", "sriov-cni:v2.8.0", 1)
	if err := a.Apply(ctx, decodeTest(t, changed)); err != nil {
		t.Fatal(err)
	}
	got := c.snapshot(t)["DaemonSet"]
	containers, _, _ := unstructured.NestedSlice(got.Object, "spec", "template", "spec", "containers")
	if img := containers[0].(map[string]interface{})["image"]; img != "ghcr.io/k8snetworkplumbingwg/sriov-cni:v2.8.0" {
		t.Errorf("image = %v after re-apply, want v2.8.0", img)
	}
	if got.GetLabels()["team"] != "net" {
		t.Errorf("labels = %v: the label of another field manager was lost", got.GetLabels())
	}
	if mf := got.GetManagedFields(); len(mf) != 2 || mf[0].Manager != DefaultFieldManager {
		t.Errorf("managed fields = %+v, want %s (apply) and kubectl-edit", mf, DefaultFieldManager)
	}
}

func TestApplyCRDNotEstablished(t *testing.T) {
	c := newCluster(t)
	a := New(c.dyn, c.mapper, "kubevirtci")
	a.EstablishTimeout = 50 * time.Millisecond
	start := time.Now()
	err := a.Apply(context.Background(), decodeTest(t, testManifests))
	if err == nil {
		t.Fatal("Apply succeeded though the CRD never became Established")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Apply took %s with a 50ms timeout", d)
	}
	want := "CRDs not Established after 50ms: network-attachment-definitions.k8s.cni.cncf.io (Established: no condition yet)"
	if err.Error() != want {
		t.Errorf("error %q\nwant  %q", err, want)
	}
	// The objects before the first of the CRD's kind do not wait for it;
	// that one is not applied.
	names, _ := applies(c.dyn.Actions())
	wantApplied := []string{
		"customresourcedefinitions /network-attachment-definitions.k8s.cni.cncf.io",
		"namespaces /sriov",
		"configmaps sriov/sriovdp-config",
	}
	if !reflect.DeepEqual(names, wantApplied) {
		t.Errorf("applied %q, want %q (nothing of the CRD's kind)", names, wantApplied)
	}
}

// The built-in kinds of component manifests map without discovery; other
// versions and kinds do not map.
func TestBuiltinMapper(t *testing.T) {
	m := BuiltinMapper()
	for _, tc := range []struct {
		gvk      schema.GroupVersionKind
		resource string
		scope    meta.RESTScopeName
	}{
		{gvkDS, "daemonsets", meta.RESTScopeNameNamespace},
		{gvkCR, "clusterroles", meta.RESTScopeNameRoot},
		{gvkCRD, "customresourcedefinitions", meta.RESTScopeNameRoot},
		{gvkNS, "namespaces", meta.RESTScopeNameRoot},
		{schema.GroupVersionKind{Version: "v1", Kind: "ServiceAccount"}, "serviceaccounts", meta.RESTScopeNameNamespace},
		{schema.GroupVersionKind{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "MutatingWebhookConfiguration"}, "mutatingwebhookconfigurations", meta.RESTScopeNameRoot},
	} {
		got, err := m.RESTMapping(tc.gvk.GroupKind(), tc.gvk.Version)
		if err != nil {
			t.Errorf("%s: %v", tc.gvk, err)
			continue
		}
		if got.Resource != tc.gvk.GroupVersion().WithResource(tc.resource) || got.Scope.Name() != tc.scope {
			t.Errorf("%s: %s, scope %s; want %s, %s", tc.gvk, got.Resource, got.Scope.Name(), tc.resource, tc.scope)
		}
	}
	for _, gvk := range []schema.GroupVersionKind{
		gvkNAD,
		{Group: "rbac.authorization.k8s.io", Version: "v1beta1", Kind: "ClusterRole"},
		{Group: "extensions", Version: "v1beta1", Kind: "DaemonSet"},
	} {
		if _, err := m.RESTMapping(gvk.GroupKind(), gvk.Version); !meta.IsNoMatchError(err) {
			t.Errorf("%s: error %v, want no match (left to discovery)", gvk, err)
		}
	}
}

// NewForConfig applies built-in kinds without one discovery request, and
// asks discovery for the others.
func TestNewForConfigDiscoversOnlyWhatItMust(t *testing.T) {
	var mu sync.Mutex
	var discovery, patches []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPatch {
			patches = append(patches, r.URL.Path)
			body, _ := io.ReadAll(r.Body)
			w.Write(body)
			return
		}
		discovery = append(discovery, r.URL.Path)
		switch r.URL.Path {
		case "/api":
			fmt.Fprint(w, `{"kind":"APIVersions","versions":["v1"]}`)
		case "/apis":
			fmt.Fprint(w, `{"kind":"APIGroupList","groups":[]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	a, err := NewForConfig(&rest.Config{Host: srv.URL}, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	builtins := decodeTest(t, "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: ds\n  namespace: kube-system\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: cr\n")
	if err := a.Apply(ctx, builtins); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(discovery) != 0 || len(patches) != 2 {
		t.Errorf("discovery requests %q, patches %q; want no discovery and the 2 patches", discovery, patches)
	}
	mu.Unlock()
	err = a.Apply(ctx, decodeTest(t, "apiVersion: kubevirt.io/v1\nkind: KubeVirt\nmetadata:\n  name: kv\n  namespace: kubevirt\n"))
	if err == nil || !strings.Contains(err.Error(), "the server has no resource for kind KubeVirt") {
		t.Errorf("error %v, want the kind unknown to discovery", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(discovery) == 0 {
		t.Error("a kind that is not built in was not looked up through discovery")
	}
}

func TestApplyCRDNamesConflict(t *testing.T) {
	c := newCluster(t)
	a := New(c.dyn, c.mapper, "kubevirtci")
	a.EstablishTimeout = 5 * time.Second
	c.establishAfterWatch(t, "network-attachment-definitions.k8s.cni.cncf.io", "Conflict")
	start := time.Now()
	err := a.Apply(context.Background(), decodeTest(t, testManifests))
	if err == nil || !strings.Contains(err.Error(), "names not accepted: ListKindConflict: kind list is already in use") {
		t.Fatalf("error %v, want the NamesAccepted reason", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a names conflict took %s to report: it should fail at once", d)
	}
}

func TestApplyErrors(t *testing.T) {
	c := newCluster(t)
	a := New(c.dyn, c.mapper, "kubevirtci")
	ctx := context.Background()

	noNS := decodeTest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")
	if err := a.Apply(ctx, noNS); err == nil || err.Error() != "apply ConfigMap x: ConfigMap is namespaced but the object has no metadata.namespace" {
		t.Errorf("no namespace: error %v", err)
	}
	unknown := decodeTest(t, "apiVersion: kubevirt.io/v1\nkind: KubeVirt\nmetadata:\n  name: kv\n  namespace: kubevirt\n")
	if err := a.Apply(ctx, unknown); err == nil || !strings.Contains(err.Error(), "apply KubeVirt kubevirt/kv: the server has no resource for kind KubeVirt in kubevirt.io/v1 (is its CRD installed?)") {
		t.Errorf("unknown kind: error %v", err)
	}
	if err := a.Apply(ctx, []*unstructured.Unstructured{{Object: map[string]interface{}{"kind": "ConfigMap"}}}); err == nil || !strings.Contains(err.Error(), "apiVersion, kind and metadata.name are required") {
		t.Errorf("incomplete object: error %v", err)
	}
	if n := len(c.dyn.Actions()); n != 0 {
		t.Errorf("failed applies made %d calls", n)
	}
}

func TestApplyConfigurationStripsServerFields(t *testing.T) {
	o := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]interface{}{
			"name": "a", "namespace": "b", "resourceVersion": "7", "uid": "u",
			"managedFields": []interface{}{map[string]interface{}{"manager": "x"}},
		},
		"status": map[string]interface{}{"x": "y"},
	}}
	c := applyConfiguration(o)
	want := map[string]interface{}{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]interface{}{"name": "a", "namespace": "b"}}
	if !reflect.DeepEqual(c.Object, want) {
		t.Errorf("apply configuration %v, want %v", c.Object, want)
	}
	if o.GetResourceVersion() != "7" {
		t.Error("the original object was modified")
	}
}

// TestWaitEstablishedEndsItsWatchQuietly: over real HTTP, the CRD watch that
// saw the CRD become Established is ended when the wait returns, and that
// end is not reported to client-go's error handlers (which print it as
// "Failed to watch ... context canceled" on every cluster-up).
func TestWaitEstablishedEndsItsWatchQuietly(t *testing.T) {
	// Established in the list: the wait ends while the watch request is
	// still being made. Established by a watch event: it ends while the
	// watch is open.
	for _, inList := range []bool{true, false} {
		t.Run(fmt.Sprintf("established in the list %v", inList), func(t *testing.T) {
			testWaitEstablishedQuietly(t, inList)
		})
	}
}

func testWaitEstablishedQuietly(t *testing.T, inList bool) {
	const name = "network-attachment-definitions.k8s.cni.cncf.io"
	crd := func(established string) string {
		return `{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"` + name +
			`","resourceVersion":"2"},"status":{"conditions":[{"type":"NamesAccepted","status":"True"},{"type":"Established","status":"` + established + `"}]}}`
	}
	var watches sync.WaitGroup // the watch requests the server is serving
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/apis/apiextensions.k8s.io/v1/customresourcedefinitions" {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("watch") != "true" {
			listed := crd("False")
			if inList {
				listed = crd("True")
			}
			fmt.Fprint(w, `{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinitionList","metadata":{"resourceVersion":"2"},"items":[`+listed+`]}`)
			return
		}
		watches.Add(1)
		defer watches.Done()
		// The watch sends the change (after the list: nothing, not even
		// its headers), then stays open like an API server's until the
		// client goes away.
		if !inList {
			fmt.Fprint(w, `{"type":"MODIFIED","object":`+crd("True")+"}\n")
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
	}))
	defer srv.Close()

	var mu sync.Mutex
	var reported []string
	saved := utilruntime.ErrorHandlers
	utilruntime.ErrorHandlers = append([]utilruntime.ErrorHandler{func(_ context.Context, err error, msg string, _ ...interface{}) {
		mu.Lock()
		reported = append(reported, msg+": "+err.Error())
		mu.Unlock()
	}}, saved...)
	defer func() { utilruntime.ErrorHandlers = saved }()

	dyn, err := dynamic.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	a := New(dyn, nil, "kubevirtci")
	a.EstablishTimeout = 10 * time.Second
	crdObj := &unstructured.Unstructured{}
	crdObj.SetName(name)
	if err := a.waitEstablished(context.Background(), []*unstructured.Unstructured{crdObj}); err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	go func() {
		watches.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the CRD watch is still open after the wait returned")
	}
	// A reflector reports the end of its watch from its own goroutine just
	// after the connection closes (within milliseconds when it does):
	// give it half a second to show.
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(reported)
		mu.Unlock()
		if n != 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 0 {
		t.Errorf("reported to client-go's error handlers: %q", reported)
	}
}
