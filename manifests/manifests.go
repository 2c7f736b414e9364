// Package manifests holds the Kubernetes manifests the provider deploys, as
// text/template files embedded in the binary: one file per component.
//
// The templates are rendered by internal/components with the provider's
// settings. Every value that comes from a setting is inserted through the
// "quote" function, which writes it as a double-quoted YAML (JSON) string, so
// no setting can change the structure of a document. The device plugin
// configuration is encoded with encoding/json in Go and inserted as a literal
// block scalar.
package manifests

import "embed"

// FS holds the manifest templates.
//
//go:embed *.yaml
var FS embed.FS

// Files names the templates in FS in the order they are rendered: multus (with
// the NetworkAttachmentDefinition CRD) first, then the SR-IOV CNI, then the
// SR-IOV network device plugin (with the namespace and its ConfigMap).
var Files = []string{
	"multus.yaml",
	"sriov-cni.yaml",
	"sriov-device-plugin.yaml",
}

// InjectorFile is network-resources-injector's template: a mutating
// admission webhook that adds to a pod the resource requests of the
// NetworkAttachmentDefinitions it names. Only providers that have it deploy
// it, after the device plugin's resources are allocatable.
const InjectorFile = "network-resources-injector.yaml"
