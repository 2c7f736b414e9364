// Package images pins what goes into the kind node image and the registry
// image that this project builds from source (Debian packages and Go
// modules only), and carries the configuration files they need.
//
// This file is the one place where versions are chosen. The build modules
// under build/ (one per component, each with its go.mod and go.sum) must
// require the versions named here; a unit test checks that they do.
package images

import "embed"

// Kubernetes and the images kubeadm asks for.
const (
	// Kubernetes is the version of kubelet, kubeadm, kubectl and the control plane.
	Kubernetes = "v1.22.2"
	// KubernetesStaging is the version of the k8s.io staging modules that
	// match Kubernetes (k8s.io/api, k8s.io/client-go, ...).
	KubernetesStaging = "v0.22.2"
	// KubeOpenAPI is the k8s.io/kube-openapi version Kubernetes pins; its
	// openapi-gen generates pkg/generated/openapi, which the module zip lacks.
	KubeOpenAPI = "v0.0.0-20210421082810-95288971da7e"
	// Etcd is the go.etcd.io/etcd/server/v3 version; EtcdImageTag is the tag
	// kubeadm asks for.
	Etcd         = "v3.5.0"
	EtcdImageTag = "3.5.0-0"
	// CoreDNS is the github.com/coredns/coredns version (and image tag).
	CoreDNS = "v1.8.4"
	// Pause is the tag of the sandbox image; its binary is built from ./pause.
	Pause = "3.5"
)

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

// The SR-IOV components the provider deploys, built from the source
// archives of their tags (`git archive --prefix=<project>-<tag>/`, gzip):
// their modules are not all served by the Go module proxy, so the archives
// are build inputs, found in a folder (the setting KUBEVIRTCI_UPSTREAM_DIR)
// and checked against these sha256 sums before use.
var (
	Multus = UpstreamSource{
		Project: "multus-cni", Tag: "v3.8", Commit: "efdc0a5c7d1ea4bb236d638403420448b48782b3",
		SHA256: "b491674c1117f49729cc2d1cdddc14b930e02903792af50533df38970f003c49",
	}
	SRIOVCNI = UpstreamSource{
		Project: "sriov-cni", Tag: "v2.7.0", Commit: "011ae68decda53a148c053aaba62afef037e7a03",
		SHA256: "3d9e28a1d2f9fd74229811ac5a031cf7c024bf90c0bf42bcfb0b1e06914e472d",
	}
	SRIOVDevicePlugin = UpstreamSource{
		Project: "sriov-network-device-plugin", Tag: "v3.4.0", Commit: "7488066fa720cb32ae77dd412fa84088f3ebac10",
		SHA256: "077fb9201bd33f81fce8f3800c0c94c3d79b242c0015b9353f5d755272a06db6",
	}
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
	NodeImage     = "localhost/kindest-node:" + Kubernetes + "-src"
	RegistryImage = "localhost/kubevirtci-registry:" + Distribution + "-src"
)

// NodePackages are the Debian packages of the node's root file system (on
// top of debootstrap's minbase variant). containerd (1.6.20 in bookworm) and
// runc come from here.
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
