// Package images pins what goes into the kind node image and the registry
// image that this project builds from source (Debian packages and Go
// modules only), and carries the configuration files they need.
//
// This file is the one place where versions are chosen. The build modules
// under build/ (one per component, each with its go.mod and go.sum) must
// require the versions named here; a unit test checks that they do.
package images

import "embed"

// Node is what one kind node image is built from: a Kubernetes version
// and the images kubeadm asks for at that version. Each provider names
// the Node it runs (Node122, Node136); the build takes it as a value.
type Node struct {
	// Kubernetes is the version of kubelet, kubeadm, kubectl and the control plane.
	Kubernetes string
	// KubernetesStaging is the version of the k8s.io staging modules that
	// match Kubernetes (k8s.io/api, k8s.io/client-go, ...).
	KubernetesStaging string
	// KubeOpenAPI is the k8s.io/kube-openapi version Kubernetes pins; its
	// openapi-gen generates pkg/generated/openapi, which the module zip lacks.
	KubeOpenAPI string
	// Etcd is the go.etcd.io/etcd/server/v3 version; EtcdImageTag is the tag
	// kubeadm asks for.
	Etcd, EtcdImageTag string
	// CoreDNS is the github.com/coredns/coredns version (and image tag).
	CoreDNS string
	// Pause is the tag of the sandbox image; its binary is built from ./pause.
	Pause string
	// ImageRegistry is the registry kubeadm names the control-plane images
	// under at this version (k8s.gcr.io, later registry.k8s.io).
	ImageRegistry string
	// BuildModule is the folder under images/build of the module that
	// builds Kubernetes at this version.
	BuildModule string
	// EtcdModule and CoreDNSModule are the folders under images/build of
	// the modules that build etcd and CoreDNS at this version.
	EtcdModule, CoreDNSModule string
	// Containerd and Runc are the versions built from Go modules for the
	// node; empty means Debian's packages (NodePackages).
	Containerd, Runc string
	// KubernetesTags are the build tags of the Kubernetes binaries,
	// separated by commas (as go build -tags takes them).
	KubernetesTags string
}

// Image is the name of the node image built from n:
// localhost/kindest-node:<Kubernetes>-src.
func (n Node) Image() string { return "localhost/kindest-node:" + n.Kubernetes + "-src" }

// Node122 is Kubernetes v1.22.2, the node of kind-1.22-sriov.
var Node122 = Node{
	Kubernetes:        "v1.22.2",
	KubernetesStaging: "v0.22.2",
	KubeOpenAPI:       "v0.0.0-20210421082810-95288971da7e",
	Etcd:              "v3.5.0",
	EtcdImageTag:      "3.5.0-0",
	CoreDNS:           "v1.8.4",
	Pause:             "3.5",
	ImageRegistry:     "k8s.gcr.io",
	BuildModule:       "k8s",
	EtcdModule:        "etcd",
	CoreDNSModule:     "coredns",
	// Without the in-tree cloud providers (AWS, Azure, GCE, OpenStack,
	// vSphere), which a kind node never uses: 40 % less source to compile
	// (64 MB instead of 106 MB), the longest part of building the image.
	// Kubernetes 1.31 removed them, so v1.36 needs no tag.
	KubernetesTags: "providerless",
}

// Node136 is Kubernetes v1.36.1, the node of kind-sriov (the version of
// kubevirtci's kindest/node:v1.36.1). Etcd, CoreDNS, pause and the
// registry are what its kubeadm asks for (`kubeadm config images list
// --kubernetes-version v1.36.1`: registry.k8s.io/etcd:3.6.8-0,
// coredns/coredns:v1.14.2, pause:3.10.2; the build checks it);
// KubeOpenAPI is what k8s.io/kubernetes v1.36.1 pins (its module zip
// carries the generated OpenAPI code, so openapi-gen does not run).
// containerd and runc are the versions kind v0.33.0's base image builds.
var Node136 = Node{
	Kubernetes:        "v1.36.1",
	KubernetesStaging: "v0.36.1",
	KubeOpenAPI:       "v0.0.0-20260317180543-43fb72c5454a",
	Etcd:              "v3.6.8",
	EtcdImageTag:      "3.6.8-0",
	CoreDNS:           "v1.14.2",
	Pause:             "3.10.2",
	ImageRegistry:     "registry.k8s.io",
	BuildModule:       "k8s-1.36",
	EtcdModule:        "etcd-3.6",
	CoreDNSModule:     "coredns-1.14",
	Containerd:        "v2.3.4",
	Runc:              "v1.4.3",
}

// Networking.
const (
	// Flannel (github.com/flannel-io/flannel) runs the pod network with the
	// host-gw backend: it needs no vxlan, and a kind cluster's nodes share a bridge.
	Flannel = "v0.28.10"
	// CNIPlugins (github.com/containernetworking/plugins) are the standard
	// plugins in the node's /opt/cni/bin.
	CNIPlugins = "v1.1.1"
	// CNIFlannelPlugins is the last containernetworking/plugins release that
	// carries the flannel meta plugin (it moved out of the repository in v1.0.0).
	CNIFlannelPlugins = "v0.9.1"
)

// The node's tools and the registry.
const (
	// Kind is the sigs.k8s.io/kind version whose images/base/files go into
	// the node, and the library version the project creates clusters with.
	Kind = "v0.33.0"
	// CRITools is the sigs.k8s.io/cri-tools version of crictl.
	CRITools = "v1.34.0"
	// Distribution is github.com/distribution/distribution/v3, the registry.
	Distribution = "v3.1.2"
	// DebianSuite is the Debian release the node's root file system comes from.
	DebianSuite = "bookworm"
	// DebianMirror is the default mirror for debootstrap.
	DebianMirror = "http://deb.debian.org/debian"
)

// The SR-IOV components the providers deploy, built from the source
// archives of their tags (`git archive --prefix=<project>-<tag>/`, gzip):
// their modules are not all served by the Go module proxy, so the archives
// are build inputs, found in a folder (the setting KUBEVIRTCI_UPSTREAM_DIR)
// and checked against these sha256 sums before use.
var (
	Multus = UpstreamSource{
		Project: "multus-cni", Tag: "v3.8", Commit: "efdc0a5c7d1ea4bb236d638403420448b48782b3",
		SHA256: "b491674c1117f49729cc2d1cdddc14b930e02903792af50533df38970f003c49",
	}
	SRIOVCNI27 = UpstreamSource{
		Project: "sriov-cni", Tag: "v2.7.0", Commit: "011ae68decda53a148c053aaba62afef037e7a03",
		SHA256: "3d9e28a1d2f9fd74229811ac5a031cf7c024bf90c0bf42bcfb0b1e06914e472d",
	}
	SRIOVDevicePlugin34 = UpstreamSource{
		Project: "sriov-network-device-plugin", Tag: "v3.4.0", Commit: "7488066fa720cb32ae77dd412fa84088f3ebac10",
		SHA256: "077fb9201bd33f81fce8f3800c0c94c3d79b242c0015b9353f5d755272a06db6",
	}
	SRIOVCNI29 = UpstreamSource{
		Project: "sriov-cni", Tag: "v2.9.0", Commit: "d1f41e4c018c456661aa2f27a3cdf737e46e9bcd",
		SHA256: "b8343a23055dc8deb238f0b303b08b1a82ed396ddbe94b3992c026f4b27b1ef1",
	}
	SRIOVDevicePlugin39 = UpstreamSource{
		Project: "sriov-network-device-plugin", Tag: "v3.9.0", Commit: "c625430be6b09f52965a656553539c20da5f82bc",
		SHA256: "dd5281a4b9180e161b18ecb82e77d16a334990e45c7e2897c20cb0aee60f42a0",
	}
	NetworkResourcesInjector19 = UpstreamSource{
		Project: "network-resources-injector", Tag: "v1.9.0", Commit: "e563db6365cd88b66ee6c2848c4d5d0736d967d3",
		SHA256: "857df6f9c2e752197a6b2878ea45655094a6696f45774d8620d2a90877390e80",
	}
)

// Components is one provider's set of component sources.
type Components struct {
	Multus, SRIOVCNI, SRIOVDevicePlugin UpstreamSource
	// Injector is network-resources-injector; zero when the provider
	// deploys none.
	Injector UpstreamSource
}

// Sources are the set's sources in build order (multus, sriov-cni, the
// device plugin, then the injector when there is one).
func (c Components) Sources() []UpstreamSource {
	out := []UpstreamSource{c.Multus, c.SRIOVCNI, c.SRIOVDevicePlugin}
	if c.Injector.Project != "" {
		out = append(out, c.Injector)
	}
	return out
}

// Components122 are kind-1.22-sriov's components.
var Components122 = Components{Multus: Multus, SRIOVCNI: SRIOVCNI27, SRIOVDevicePlugin: SRIOVDevicePlugin34}

// Components136 are kind-sriov's components.
var Components136 = Components{Multus: Multus, SRIOVCNI: SRIOVCNI29, SRIOVDevicePlugin: SRIOVDevicePlugin39, Injector: NetworkResourcesInjector19}

// Versions is what a provider's images are built from.
type Versions struct {
	Node       Node
	Components Components
}

// V122 builds kind-1.22-sriov's images; V136 kind-sriov's.
var (
	V122 = Versions{Node: Node122, Components: Components122}
	V136 = Versions{Node: Node136, Components: Components136}
)

// MultusGoToolchain builds multus. Its v3.8 entrypoint writes the API
// server into the kubeconfig as https://[<IPv4>]:443, which net/url
// refuses since the fix of CVE-2025-47912 (Go 1.24.8 and 1.25.2): a multus
// built with a newer Go cannot reach the API server. Upstream built v3.8
// with Go 1.17; this is the last release before the fix. The go command
// fetches it from the module proxy.
const MultusGoToolchain = "go1.24.7"

// UpstreamSource is one component's source archive.
type UpstreamSource struct {
	Project string // the repository's name under github.com/k8snetworkplumbingwg
	Tag     string
	Commit  string // the tag's commit (recorded in the image's labels)
	SHA256  string // of the archive file
}

// Archive is the archive's file name: <project>-<tag>.tar.gz.
func (u UpstreamSource) Archive() string { return u.Project + "-" + u.Tag + ".tar.gz" }

// Image is the name of the image built from it:
// localhost/kubevirtci-<project>:<tag>-src.
func (u UpstreamSource) Image() string {
	return "localhost/kubevirtci-" + u.Project + ":" + u.Tag + "-src"
}

// ComponentPackages are the Debian packages of the components' shared base
// layer: multus's entrypoint is bash and runs python (as `python`), the
// device plugin reads PCI names from pci.ids.
var ComponentPackages = []string{"python3", "python-is-python3", "pci.ids"}

// Final image names. They say what they are: built here, from source.
const (
	RegistryImage = "localhost/kubevirtci-registry:" + Distribution + "-src"
)

// NodePackages are the Debian packages of the node's root file system (on
// top of debootstrap's minbase variant). containerd (1.6.20 in bookworm) and
// runc come from here for a Node whose Containerd is empty; the others
// leave these two packages out (their containerd and runc are built from
// Go modules).
var NodePackages = []string{
	"systemd", "systemd-sysv", "dbus",
	"containerd", "runc",
	"conntrack", "iptables", "nftables", "iproute2", "ethtool", "util-linux", "mount", "kmod",
	"libseccomp2", "pigz", "e2fsprogs", "socat", "ebtables",
	"bash", "ca-certificates", "curl", "jq", "procps", "less",
}

// SlimPackages are the Debian packages of the base layer of the images that
// program iptables (kube-proxy and flannel).
var SlimPackages = []string{"iptables", "conntrack", "ca-certificates"}

// Files holds the configuration files of the images:
//
//	node/containerd-config.toml  containerd's config in the node
//	node/default-cni.yaml        flannel (host-gw), applied by kind's CNI step
//	node/default-storage.yaml    the default StorageClass, applied by kind
//	node/iptables-wrapper        picks iptables-legacy or -nft like the node does
//	registry/config.yml          the registry's configuration
//
//go:embed node registry
var Files embed.FS

// UpstreamRegistry is where the components' upstream images are published:
// <UpstreamRegistry>/<project>:<tag>.
const UpstreamRegistry = "ghcr.io/k8snetworkplumbingwg"

// UpstreamImage is the component's upstream image, the one nodes with
// registry access pull by default: ghcr.io/k8snetworkplumbingwg/<project>:<tag>.
func (u UpstreamSource) UpstreamImage() string {
	return UpstreamRegistry + "/" + u.Project + ":" + u.Tag
}
