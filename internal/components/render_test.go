package components

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/kubevirt/kubevirtci-go/manifests"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func params(pfs []string, mirror bool) Params {
	p := DefaultParams()
	p.PFNames = pfs
	if mirror {
		p.MultusImage = "registry.lab.example:5000/mirror/multus-cni:v3.8"
		p.SRIOVCNIImage = "registry.lab.example:5000/mirror/sriov-cni@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		p.DevicePluginImage = "localhost:5000/sriov-network-device-plugin:v3.4.0"
	}
	return p
}

var (
	onePFPerNode  = []string{"ens1f0", "ens2f0"}
	twoPFsPerNode = []string{"ens1f0", "ens1f1", "ens2f0", "ens2f1"}
)

var goldenCases = []struct {
	name string
	p    Params
}{
	{"one-pf-per-node", params(onePFPerNode, false)},
	{"two-pfs-per-node", params(twoPFsPerNode, false)},
	{"one-pf-per-node-mirror", params(onePFPerNode, true)},
	{"two-pfs-per-node-mirror", params(twoPFsPerNode, true)},
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			files, err := RenderYAML(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			for _, f := range manifests.Files {
				got.WriteString("# ---- " + f + " ----\n")
				got.Write(files[f])
			}
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestRenderGolden -update to create it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("rendered manifests differ from %s (go test -update rewrites it); got:\n%s", path, got.String())
			}
		})
	}
}

// typed converts an object to its Kubernetes type, failing on fields the
// type does not have.
func typed(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, into, true); err != nil {
		t.Fatalf("%s %s does not decode as %T: %v", o.GetKind(), o.GetName(), into, err)
	}
}

type rendered struct {
	objs       []*unstructured.Unstructured
	daemonSets map[string]*appsv1.DaemonSet
	configMap  *corev1.ConfigMap
	crd        *unstructured.Unstructured
}

func render(t *testing.T, p Params) rendered {
	t.Helper()
	objs, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	r := rendered{objs: objs, daemonSets: map[string]*appsv1.DaemonSet{}}
	for _, o := range objs {
		switch o.GetAPIVersion() + " " + o.GetKind() {
		case "v1 Namespace":
			typed(t, o, &corev1.Namespace{})
		case "v1 ServiceAccount":
			typed(t, o, &corev1.ServiceAccount{})
		case "v1 ConfigMap":
			r.configMap = &corev1.ConfigMap{}
			typed(t, o, r.configMap)
		case "apps/v1 DaemonSet":
			ds := &appsv1.DaemonSet{}
			typed(t, o, ds)
			r.daemonSets[ds.Name] = ds
		case "rbac.authorization.k8s.io/v1 ClusterRole":
			typed(t, o, &rbacv1.ClusterRole{})
		case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
			typed(t, o, &rbacv1.ClusterRoleBinding{})
		case "apiextensions.k8s.io/v1 CustomResourceDefinition":
			r.crd = o
		default:
			t.Errorf("unexpected object %s %s", o.GetAPIVersion(), o.GetKind())
		}
	}
	return r
}

func TestRenderedObjects(t *testing.T) {
	r := render(t, params(twoPFsPerNode, false))
	var order []string
	for _, o := range r.objs {
		order = append(order, o.GetKind()+" "+qualified(o))
	}
	want := []string{
		"CustomResourceDefinition network-attachment-definitions.k8s.cni.cncf.io",
		"Namespace sriov",
		"ServiceAccount kube-system/multus",
		"ClusterRole multus",
		"ClusterRoleBinding multus",
		"DaemonSet kube-system/kube-multus-ds",
		"DaemonSet sriov/kube-sriov-cni-ds-amd64",
		"ServiceAccount sriov/sriov-device-plugin",
		"ConfigMap sriov/sriovdp-config",
		"DaemonSet sriov/kube-sriov-device-plugin-amd64",
	}
	if !reflect.DeepEqual(order, want) {
		t.Fatalf("objects:\n got %q\nwant %q", order, want)
	}
}

func TestCRD(t *testing.T) {
	crd := render(t, params(onePFPerNode, false)).crd
	str := func(path ...string) string {
		s, _, _ := unstructured.NestedString(crd.Object, path...)
		return s
	}
	if crd.GetName() != str("spec", "names", "plural")+"."+str("spec", "group") {
		t.Errorf("CRD name %s is not <plural>.<group>", crd.GetName())
	}
	for path, want := range map[string]string{
		"spec.group": "k8s.cni.cncf.io", "spec.scope": "Namespaced",
		"spec.names.kind": "NetworkAttachmentDefinition", "spec.names.plural": "network-attachment-definitions",
	} {
		if got := str(strings.Split(path, ".")...); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	short, _, _ := unstructured.NestedStringSlice(crd.Object, "spec", "names", "shortNames")
	if !reflect.DeepEqual(short, []string{"net-attach-def"}) {
		t.Errorf("shortNames = %v", short)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	if len(versions) != 1 {
		t.Fatalf("%d versions, want 1", len(versions))
	}
	v := versions[0].(map[string]interface{})
	if v["name"] != "v1" || v["served"] != true || v["storage"] != true {
		t.Errorf("version %v, want v1 served and stored", v)
	}
	typ, _, _ := unstructured.NestedString(v, "schema", "openAPIV3Schema", "properties", "spec", "properties", "config", "type")
	if typ != "string" {
		t.Errorf("spec.config type %q, want string", typ)
	}
}

func TestDevicePluginConfigListsEveryPF(t *testing.T) {
	// Linux allows quotes and brackets in interface names: the JSON
	// encoder must keep them inside the string.
	for _, pfs := range [][]string{onePFPerNode, twoPFsPerNode, {"ens1f0", "ens1f0", "ens1f1"}, {`e"}],[{`, `e\n`}} {
		p := params(pfs, false)
		p.VFDriver = "vfio-pci"
		cm := render(t, p).configMap
		if cm.Name != "sriovdp-config" || cm.Namespace != "sriov" {
			t.Errorf("ConfigMap %s/%s", cm.Namespace, cm.Name)
		}
		var cfg struct {
			ResourceList []struct {
				ResourceName string `json:"resourceName"`
				Selectors    struct {
					Drivers []string `json:"drivers"`
					PFNames []string `json:"pfNames"`
				} `json:"selectors"`
			} `json:"resourceList"`
		}
		dec := json.NewDecoder(strings.NewReader(cm.Data["config.json"]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			t.Fatalf("config.json does not parse: %v\n%s", err, cm.Data["config.json"])
		}
		if len(cfg.ResourceList) != 1 {
			t.Fatalf("resourceList %+v", cfg.ResourceList)
		}
		r := cfg.ResourceList[0]
		if r.ResourceName != "sriov_net" || !reflect.DeepEqual(r.Selectors.Drivers, []string{"vfio-pci"}) {
			t.Errorf("resource %+v", r)
		}
		if want := dedupe(pfs); !reflect.DeepEqual(r.Selectors.PFNames, want) {
			t.Errorf("pfNames = %v, want every PF %v", r.Selectors.PFNames, want)
		}
	}
}

func TestDaemonSetsSelectorsAndImages(t *testing.T) {
	for _, mirror := range []bool{false, true} {
		p := params(onePFPerNode, mirror)
		r := render(t, p)
		sriovNodes := map[string]string{"kubernetes.io/arch": "amd64", "sriov_capable": "true"}
		for _, tc := range []struct {
			name, ns, app, container, image string
			nodeSelector                    map[string]string
			hostNetwork, privileged         bool
		}{
			{"kube-multus-ds", "kube-system", "multus", "kube-multus", p.MultusImage, nil, true, true},
			{"kube-sriov-cni-ds-amd64", "sriov", "sriov-cni", "kube-sriov-cni", p.SRIOVCNIImage, sriovNodes, true, false},
			{"kube-sriov-device-plugin-amd64", "sriov", "sriovdp", "kube-sriovdp", p.DevicePluginImage, sriovNodes, true, true},
		} {
			ds := r.daemonSets[tc.name]
			if ds == nil {
				t.Fatalf("DaemonSet %s not rendered", tc.name)
			}
			if ds.Namespace != tc.ns {
				t.Errorf("%s: namespace %s, want %s", tc.name, ds.Namespace, tc.ns)
			}
			// The README's selectors: kubectl get pods -n <ns> -l app=<app>.
			if ds.Spec.Template.Labels["app"] != tc.app || ds.Labels["app"] != tc.app {
				t.Errorf("%s: app labels %v / %v, want %s", tc.name, ds.Labels, ds.Spec.Template.Labels, tc.app)
			}
			for k, v := range ds.Spec.Selector.MatchLabels {
				if ds.Spec.Template.Labels[k] != v {
					t.Errorf("%s: selector %v does not match the template labels %v", tc.name, ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels)
				}
			}
			spec := ds.Spec.Template.Spec
			if !reflect.DeepEqual(spec.NodeSelector, tc.nodeSelector) {
				t.Errorf("%s: node selector %v, want %v", tc.name, spec.NodeSelector, tc.nodeSelector)
			}
			if spec.HostNetwork != tc.hostNetwork {
				t.Errorf("%s: hostNetwork %v", tc.name, spec.HostNetwork)
			}
			// Each starts on a node that is not Ready yet (its pod network
			// still coming up), beside the pod network's own pods.
			if !toleratesNotReady(spec.Tolerations) {
				t.Errorf("%s: does not tolerate node.kubernetes.io/not-ready:NoSchedule: %v", tc.name, spec.Tolerations)
			}
			c := spec.Containers[0]
			if c.Name != tc.container || c.Image != tc.image {
				t.Errorf("%s: container %s image %s, want %s %s", tc.name, c.Name, c.Image, tc.container, tc.image)
			}
			if priv := c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged; priv != tc.privileged {
				t.Errorf("%s: privileged %v", tc.name, priv)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: resources %v", tc.name, c.Resources)
			}
		}
		dp := r.daemonSets["kube-sriov-device-plugin-amd64"].Spec.Template.Spec
		if !reflect.DeepEqual(dp.Containers[0].Args, []string{"--log-dir=sriovdp", "--log-level=10", "--resource-prefix=kubevirt.io"}) {
			t.Errorf("device plugin args %q", dp.Containers[0].Args)
		}
		if dp.ServiceAccountName != "sriov-device-plugin" {
			t.Errorf("device plugin service account %q", dp.ServiceAccountName)
		}
		var cmVolume *corev1.ConfigMapVolumeSource
		for _, v := range dp.Volumes {
			if v.ConfigMap != nil {
				cmVolume = v.ConfigMap
			}
		}
		if cmVolume == nil || cmVolume.Name != "sriovdp-config" || cmVolume.Items[0].Key != "config.json" {
			t.Errorf("device plugin config volume %+v", cmVolume)
		}
		cni := r.daemonSets["kube-sriov-cni-ds-amd64"].Spec.Template.Spec.Containers[0].SecurityContext
		if *cni.AllowPrivilegeEscalation || !*cni.ReadOnlyRootFilesystem || len(cni.Capabilities.Drop) != 1 || cni.Capabilities.Drop[0] != "ALL" {
			t.Errorf("sriov-cni security context %+v", cni)
		}
		multus := r.daemonSets["kube-multus-ds"].Spec.Template.Spec
		if len(multus.Tolerations) != 1 || multus.Tolerations[0].Operator != corev1.TolerationOpExists || multus.Tolerations[0].Key != "" {
			t.Errorf("multus tolerations %+v, want every NoSchedule taint", multus.Tolerations)
		}
	}
}

func TestRenderSettings(t *testing.T) {
	p := params([]string{"eth1"}, false)
	p.Namespace = "sriov-lab"
	p.NodeLabelKey = "example.com/sriov"
	p.NodeLabelValue = "yes"
	p.ResourcePrefix = "example.com"
	p.ResourceName = "vf"
	p.VFDriver = "mlx5_core"
	r := render(t, p)
	dp := r.daemonSets["kube-sriov-device-plugin-amd64"]
	if dp.Namespace != "sriov-lab" || r.configMap.Namespace != "sriov-lab" {
		t.Errorf("namespace not applied: %s, %s", dp.Namespace, r.configMap.Namespace)
	}
	if dp.Spec.Template.Spec.NodeSelector["example.com/sriov"] != "yes" {
		t.Errorf("node selector %v", dp.Spec.Template.Spec.NodeSelector)
	}
	if a := dp.Spec.Template.Spec.Containers[0].Args[2]; a != "--resource-prefix=example.com" {
		t.Errorf("prefix arg %q", a)
	}
	cfg := r.configMap.Data["config.json"]
	if !strings.Contains(cfg, `"resourceName": "vf"`) || !strings.Contains(cfg, `"mlx5_core"`) {
		t.Errorf("config.json:\n%s", cfg)
	}
	if p.Resource() != "example.com/vf" {
		t.Errorf("Resource() = %s", p.Resource())
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Params)
		want string
	}{
		{"no PFs", func(p *Params) { p.PFNames = nil }, "no PF names: list every PF moved into a node"},
		{"PF name with slash", func(p *Params) { p.PFNames = []string{"ens1/0"} }, `PF name "ens1/0": must be a network interface name`},
		{"PF name too long", func(p *Params) { p.PFNames = []string{"enp0s31f6abcdefgh"} }, `PF name "enp0s31f6abcdefgh"`},
		{"image with space", func(p *Params) { p.MultusImage = "ghcr.io/x y" }, `MULTUS_IMAGE "ghcr.io/x y": is not an image reference`},
		{"image with newline", func(p *Params) { p.SRIOVCNIImage = "a:1\nkind: Secret" }, `SRIOV_CNI_IMAGE "a:1\nkind: Secret": is not an image reference`},
		{"empty image", func(p *Params) { p.DevicePluginImage = "" }, `SRIOV_DEVICE_PLUGIN_IMAGE "": is not an image reference`},
		{"label value", func(p *Params) { p.NodeLabelValue = "a b" }, `SR-IOV node label value "a b"`},
		{"label key", func(p *Params) { p.NodeLabelKey = "" }, `SR-IOV node label key ""`},
		{"namespace", func(p *Params) { p.Namespace = "SRIOV" }, `namespace "SRIOV": must be a DNS label`},
		{"resource name", func(p *Params) { p.ResourceName = "sriov/net" }, `resource name "sriov/net"`},
		{"resource prefix", func(p *Params) { p.ResourcePrefix = "Kubevirt_io" }, `resource prefix "Kubevirt_io"`},
		{"driver", func(p *Params) { p.VFDriver = "vfio pci" }, `VF driver "vfio pci"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := params(onePFPerNode, false)
			tc.edit(&p)
			_, err := Render(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if err := params(onePFPerNode, true).Validate(); err != nil {
		t.Fatalf("mirror images rejected: %v", err)
	}
}

func TestQuoteKeepsYAMLStructure(t *testing.T) {
	quote := funcs["quote"].(func(string) (string, error))
	for _, s := range []string{`a: b`, "x\n- y", `"}]{`, `#c`, `*anchor`, "tab\there", `true`, `123`, "null", ""} {
		q, err := quote(s)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]string
		if err := yaml.Unmarshal([]byte("k: "+q+"\n"), &got); err != nil || got["k"] != s {
			t.Errorf("quote(%q) = %s reads back as %q (%v)", s, q, got["k"], err)
		}
	}
}

// toleratesNotReady reports whether tolerations let a pod be scheduled on a
// node that is not Ready.
func toleratesNotReady(tolerations []corev1.Toleration) bool {
	taint := &corev1.Taint{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule}
	for _, t := range tolerations {
		if t.ToleratesTaint(taint) {
			return true
		}
	}
	return false
}
