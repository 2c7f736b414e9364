// Package components renders, applies and waits for the cluster components of
// the SR-IOV provider: multus (with the NetworkAttachmentDefinition CRD),
// the SR-IOV CNI and the SR-IOV network device plugin.
package components

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/kubeapply"
	"github.com/kubevirt/kubevirtci-go/manifests"
)

// Default values of Params.
const (
	DefaultResourcePrefix = "kubevirt.io"
	DefaultResourceName   = "sriov_net"
	DefaultNodeLabelKey   = "sriov_capable"
	DefaultNodeLabelValue = "true"
	DefaultVFDriver       = "vfio-pci"
	DefaultNamespace      = "sriov"
)

// The images of DefaultParams: kind-1.22-sriov's upstream ones (each
// provider passes its own; images/versions.go owns the tags).
var (
	DefaultMultusImage       = images.Components122.Multus.UpstreamImage()
	DefaultSRIOVCNIImage     = images.Components122.SRIOVCNI.UpstreamImage()
	DefaultDevicePluginImage = images.Components122.SRIOVDevicePlugin.UpstreamImage()
	exampleInjectorImage     = images.Components136.Injector.UpstreamImage()
)

// MultusNamespace is where multus runs; it is not configurable.
const MultusNamespace = "kube-system"

// Params are the provider settings the manifests are rendered with.
type Params struct {
	// ResourcePrefix and ResourceName make the extended resource the
	// device plugin advertises: ResourcePrefix/ResourceName.
	ResourcePrefix string
	ResourceName   string
	// NodeLabelKey=NodeLabelValue is the label of the SR-IOV nodes; the
	// SR-IOV CNI and the device plugin run only there.
	NodeLabelKey   string
	NodeLabelValue string
	// VFDriver is the kernel driver the VFs are bound to; the device plugin
	// only advertises VFs bound to it.
	VFDriver string
	// PFNames lists every PF moved into a node (all nodes together). The
	// device plugin advertises VFs of these PFs only. Duplicates are
	// dropped, the order is kept.
	PFNames []string
	// Namespace of the SR-IOV CNI and the device plugin.
	Namespace string
	// Images (settings MULTUS_IMAGE, SRIOV_CNI_IMAGE,
	// SRIOV_DEVICE_PLUGIN_IMAGE), e.g. to use a mirror.
	MultusImage       string
	SRIOVCNIImage     string
	DevicePluginImage string
	// InjectorImage is network-resources-injector's image (setting
	// NETWORK_RESOURCES_INJECTOR_IMAGE); "" deploys no injector.
	InjectorImage string
}

// DefaultParams returns the provider's defaults, without PFs.
func DefaultParams() Params {
	return Params{
		ResourcePrefix:    DefaultResourcePrefix,
		ResourceName:      DefaultResourceName,
		NodeLabelKey:      DefaultNodeLabelKey,
		NodeLabelValue:    DefaultNodeLabelValue,
		VFDriver:          DefaultVFDriver,
		Namespace:         DefaultNamespace,
		MultusImage:       DefaultMultusImage,
		SRIOVCNIImage:     DefaultSRIOVCNIImage,
		DevicePluginImage: DefaultDevicePluginImage,
	}
}

// Resource is the extended resource the device plugin advertises, e.g.
// "kubevirt.io/sriov_net".
func (p Params) Resource() string { return p.ResourcePrefix + "/" + p.ResourceName }

var (
	resourceNameRE = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	driverRE       = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// Validate checks every field and names the bad one, its value and what
// would work.
func (p Params) Validate() error {
	var errs []string
	bad := func(field, value, want string) {
		errs = append(errs, fmt.Sprintf("%s %q: %s", field, value, want))
	}
	if msgs := validation.IsDNS1123Subdomain(p.ResourcePrefix); len(msgs) > 0 {
		bad("resource prefix", p.ResourcePrefix, "must be a DNS subdomain such as "+DefaultResourcePrefix+" ("+strings.Join(msgs, "; ")+")")
	}
	if !resourceNameRE.MatchString(p.ResourceName) {
		bad("resource name", p.ResourceName, "must be letters, digits and underscores, such as "+DefaultResourceName)
	} else if msgs := validation.IsQualifiedName(p.Resource()); len(msgs) > 0 {
		bad("resource", p.Resource(), "must be a qualified name ("+strings.Join(msgs, "; ")+")")
	}
	if msgs := validation.IsQualifiedName(p.NodeLabelKey); len(msgs) > 0 {
		bad("SR-IOV node label key", p.NodeLabelKey, "must be a label key such as "+DefaultNodeLabelKey+" ("+strings.Join(msgs, "; ")+")")
	}
	if msgs := validation.IsValidLabelValue(p.NodeLabelValue); len(msgs) > 0 {
		bad("SR-IOV node label value", p.NodeLabelValue, "must be a label value such as \"true\" ("+strings.Join(msgs, "; ")+")")
	}
	if !driverRE.MatchString(p.VFDriver) {
		bad("VF driver", p.VFDriver, "must be a kernel driver name such as "+DefaultVFDriver)
	}
	if msgs := validation.IsDNS1123Label(p.Namespace); len(msgs) > 0 {
		bad("namespace", p.Namespace, "must be a DNS label such as "+DefaultNamespace+" ("+strings.Join(msgs, "; ")+")")
	}
	if len(p.PFNames) == 0 {
		errs = append(errs, "no PF names: list every PF moved into a node (e.g. [\"ens1f0\"]); without them the device plugin would advertise any VF bound to "+p.VFDriver)
	}
	for _, pf := range p.PFNames {
		if err := config.ValidateInterfaceName(pf); err != nil {
			bad("PF name", pf, "must be a network interface name: "+err.Error()+" (1 to 15 characters, no '/', ':' or white space)")
		}
	}
	for _, img := range []struct{ setting, value, example string }{
		{"MULTUS_IMAGE", p.MultusImage, DefaultMultusImage},
		{"SRIOV_CNI_IMAGE", p.SRIOVCNIImage, DefaultSRIOVCNIImage},
		{"SRIOV_DEVICE_PLUGIN_IMAGE", p.DevicePluginImage, DefaultDevicePluginImage},
		{"NETWORK_RESOURCES_INJECTOR_IMAGE", p.InjectorImage, exampleInjectorImage},
	} {
		if img.value == "" && img.setting == "NETWORK_RESOURCES_INJECTOR_IMAGE" {
			continue
		}
		if _, err := name.ParseReference(img.value); err != nil || strings.TrimSpace(img.value) != img.value {
			why := "white space around it"
			if err != nil {
				why = err.Error()
			}
			bad(img.setting, img.value, fmt.Sprintf("is not an image reference (%s); use e.g. %s", why, img.example))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("component settings: %s", strings.Join(errs, "; "))
	}
	return nil
}

// DevicePluginConfig returns the device plugin's config.json: one resource
// selecting the VFs bound to the VF driver on every PF of p.PFNames.
func DevicePluginConfig(p Params) ([]byte, error) {
	type selectors struct {
		Drivers []string `json:"drivers"`
		PFNames []string `json:"pfNames"`
	}
	type resource struct {
		ResourceName string    `json:"resourceName"`
		Selectors    selectors `json:"selectors"`
	}
	cfg := struct {
		ResourceList []resource `json:"resourceList"`
	}{ResourceList: []resource{{
		ResourceName: p.ResourceName,
		Selectors:    selectors{Drivers: []string{p.VFDriver}, PFNames: dedupe(p.PFNames)},
	}}}
	return json.MarshalIndent(cfg, "", "  ")
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// templateData is what the templates see.
type templateData struct {
	Params
	DevicePluginConfig string
}

var funcs = template.FuncMap{
	// quote writes a string as a double-quoted YAML scalar (JSON is YAML).
	"quote": func(s string) (string, error) {
		b, err := json.Marshal(s)
		return string(b), err
	},
	// indent indents every line of s by n spaces (for block scalars).
	"indent": func(n int, s string) string {
		pad := strings.Repeat(" ", n)
		lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
		for i, l := range lines {
			lines[i] = pad + l
		}
		return strings.Join(lines, "\n")
	},
}

// files are the manifest files p deploys: manifests.Files, then the
// injector's when p has an injector image.
func (p Params) files() []string {
	if p.InjectorImage == "" {
		return manifests.Files
	}
	return append(append([]string{}, manifests.Files...), manifests.InjectorFile)
}

// RenderYAML renders each manifest template with p and returns the YAML of
// each file, keyed by file name (see manifests.Files and
// manifests.InjectorFile).
func RenderYAML(p Params) (map[string][]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	cfg, err := DevicePluginConfig(p)
	if err != nil {
		return nil, fmt.Errorf("device plugin config: %w", err)
	}
	data := templateData{Params: p, DevicePluginConfig: string(cfg)}
	out := map[string][]byte{}
	for _, f := range p.files() {
		t, err := template.New(f).Funcs(funcs).Option("missingkey=error").ParseFS(manifests.FS, f)
		if err != nil {
			return nil, fmt.Errorf("manifest template %s: %w", f, err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return nil, fmt.Errorf("render manifest %s: %w", f, err)
		}
		out[f] = b.Bytes()
	}
	return out, nil
}

// Render renders the manifests of multus, sriov-cni and the device plugin
// with p and decodes them: CRDs first, then namespaces, then the other
// objects in file order (multus, SR-IOV CNI, device plugin).
func Render(p Params) ([]*unstructured.Unstructured, error) {
	return renderFiles(p, manifests.Files)
}

// RenderInjector renders network-resources-injector's manifest with p; none
// when p has no injector image.
func RenderInjector(p Params) ([]*unstructured.Unstructured, error) {
	if p.InjectorImage == "" {
		return nil, nil
	}
	return renderFiles(p, []string{manifests.InjectorFile})
}

func renderFiles(p Params, which []string) ([]*unstructured.Unstructured, error) {
	files, err := RenderYAML(p)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for _, f := range which {
		got, err := kubeapply.Decode(bytes.NewReader(files[f]), f)
		if err != nil {
			return nil, fmt.Errorf("rendered manifest: %w", err)
		}
		objs = append(objs, got...)
	}
	rank := func(o *unstructured.Unstructured) int {
		switch o.GetKind() {
		case "CustomResourceDefinition":
			return 0
		case "Namespace":
			return 1
		}
		return 2
	}
	sort.SliceStable(objs, func(i, j int) bool { return rank(objs[i]) < rank(objs[j]) })
	return objs, nil
}
