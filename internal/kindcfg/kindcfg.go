// Package kindcfg renders the kind cluster configuration (kind.x-k8s.io/v1alpha4)
// of a provider from its settings, and the containerd registry host file that
// every node needs to pull from the local registry.
//
// The output is deterministic: the same settings give the same bytes.
package kindcfg

import (
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"

	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/localregistry"
)

// CertsDir is containerd's registry host configuration folder. Each registry
// gets <CertsDir>/<host[:port]>/hosts.toml.
const CertsDir = localregistry.CertsDir

// VersionAwarePatchesKind is the first kind release that applies a containerd
// config patch only to a node whose config.toml has the same `version`
// (kind pull request 4042). Older releases merge every patch into every node,
// so a patch carrying `version = 3` would turn a version 2 file into an
// invalid version 3 one.
const VersionAwarePatchesKind = "0.32.0"

// Options are what differs between the providers' kind configurations.
type Options struct {
	// WorkerKubelet are the kubelet flags of the worker nodes (without the
	// leading "--"), e.g. the static CPU manager (dedicated CPUs for VMs)
	// and the CPU it needs reserved for the system and for Kubernetes.
	WorkerKubelet map[string]string
	// AllowCgroupV1 sets the kubelet's failCgroupV1 to false, which
	// Kubernetes 1.35 and later need to start on a cgroup v1 host. Set it
	// only on such a host, and only for a node image whose kubelet knows
	// the field (1.31 and later).
	AllowCgroupV1 bool
	// NodeImage, when set, is the image of every node instead of the
	// settings' NodeImage (the node image with the component images
	// preloaded).
	NodeImage string
}

// workerJoinPatch is the JoinConfiguration patch of the workers: their
// kubelet flags, sorted.
func workerJoinPatch(flags map[string]string) string {
	if len(flags) == 0 {
		return ""
	}
	keys := make([]string, 0, len(flags))
	for k := range flags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("kind: JoinConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "    %s: %s\n", k, flags[k])
	}
	return b.String()
}

// Cluster builds the kind cluster configuration from the settings:
//
//   - one control-plane node and NumNodes-1 workers, all with NodeImage;
//   - every worker mounts /var/log/audit (read-only) and /dev/vfio/ from the
//     host (VFIO devices for SR-IOV VFs given to VMs), and joins with the CPU
//     manager settings above;
//   - with EtcdInMemory, etcd keeps its data in EtcdDataDir, see etcdPatch;
//   - containerd reads registry host files from CertsDir, see
//     ContainerdPatches.
//
// The kubeadm patches name only the kind of object (no apiVersion): kind then
// applies them to whatever kubeadm API version it generates for the node
// image's Kubernetes version (v1beta2 for 1.22, v1beta3 from 1.23, v1beta4
// from 1.36, where kind v0.32+ converts the extra-argument maps to lists).
// Networking is left at kind's defaults, including its default CNI.
func Cluster(c *config.Config, o Options) (*v1alpha4.Cluster, error) {
	if c.NumNodes < 1 {
		return nil, fmt.Errorf("kind config: %d nodes: need at least 1", c.NumNodes)
	}
	image := c.NodeImage
	if o.NodeImage != "" {
		image = o.NodeImage
	}
	if c.ClusterName == "" || image == "" {
		return nil, fmt.Errorf("kind config: cluster name %q and node image %q must both be set", c.ClusterName, image)
	}
	cl := &v1alpha4.Cluster{
		TypeMeta: v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Name:     c.ClusterName,
		Nodes: []v1alpha4.Node{{
			Role:  v1alpha4.ControlPlaneRole,
			Image: image,
		}},
		ContainerdConfigPatches: ContainerdPatches(c),
	}
	for i := 1; i < c.NumNodes; i++ {
		cl.Nodes = append(cl.Nodes, v1alpha4.Node{
			Role:  v1alpha4.WorkerRole,
			Image: image,
			ExtraMounts: []v1alpha4.Mount{
				{ContainerPath: "/var/log/audit", HostPath: "/var/log/audit", Readonly: true},
				{ContainerPath: "/dev/vfio/", HostPath: "/dev/vfio/"},
			},
		})
		if p := workerJoinPatch(o.WorkerKubelet); p != "" {
			cl.Nodes[i].KubeadmConfigPatches = []string{p}
		}
	}
	if c.IPFamily != "" && c.IPFamily != config.IPv4 {
		cl.Networking.IPFamily = v1alpha4.ClusterIPFamily(c.IPFamily)
	}
	if o.AllowCgroupV1 {
		cl.KubeadmConfigPatches = append(cl.KubeadmConfigPatches, KubeletCgroupV1Patch())
	}
	if c.EtcdInMemory {
		p, err := etcdPatch(c.EtcdDataDir)
		if err != nil {
			return nil, err
		}
		cl.KubeadmConfigPatches = append(cl.KubeadmConfigPatches, p)
	}
	return cl, nil
}

// Render returns the kind cluster configuration as YAML, fields in the
// order of kind's types (kind, apiVersion, name, nodes, ...) so that the
// printed config reads top-down; patches are literal blocks.
func Render(c *config.Config, o Options) ([]byte, error) {
	cl, err := Cluster(c, o)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(cl); err != nil {
		return nil, fmt.Errorf("kind config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("kind config: %w", err)
	}
	return b.Bytes(), nil
}

// etcdPatch moves etcd's data into dataDir.
//
// Why this is in memory: kind starts every node container with
// `--tmpfs /tmp` (its docker, podman and nerdctl providers in
// pkg/cluster/internal/providers/*/provision.go, kind v0.33.0), so a folder
// under /tmp of the control-plane node is RAM-backed. etcd fsyncs on every
// write; on tmpfs that costs nothing, which makes a test cluster faster and
// spares the disk. The data is lost with the node, which a throw-away cluster
// does not mind. The provider checks after creation that the folder really is
// on tmpfs, since a node image or runtime could behave otherwise.
func etcdPatch(dataDir string) (string, error) {
	clean := path.Clean(dataDir)
	if !strings.HasPrefix(clean, "/tmp/") {
		return "", fmt.Errorf("kind config: etcd data dir %q is not under /tmp, the only tmpfs kind gives a node", dataDir)
	}
	return "kind: ClusterConfiguration\netcd:\n  local:\n    dataDir: " + clean + "\n", nil
}

// ContainerdPatches are the containerd config patches that make the CRI
// plugin read registry host files from CertsDir (the `config_path` way; the
// old `registry.mirrors` key is refused by containerd 2 when config_path is
// set, and deprecated in 1.x).
//
// containerd's config file format names the CRI image settings differently:
//
//   - version 2 (containerd 1.5 to 1.7, and still read by containerd 2.x,
//     which migrates it; kind's own node images up to v0.33.0 ship a version 2
//     file even with containerd 2): [plugins."io.containerd.grpc.v1.cri".registry]
//   - version 3 (containerd 2.x): [plugins."io.containerd.cri.v1.images".registry]
//
// With kind >= VersionAwarePatchesKind both patches are given, each marked with
// its `version`, and kind applies only the one that matches the node's file,
// so any node image works. Older kind releases apply every patch to every
// node; for them only the version 2 patch is given, unmarked, which fits every
// node image of their time (the node image built for this provider has
// containerd 1.6.20 and a version 2 file).
func ContainerdPatches(c *config.Config) []string {
	v2body := `[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "` + CertsDir + `"
`
	if !c.KindVersionAtLeast(VersionAwarePatchesKind) {
		return []string{v2body}
	}
	return []string{
		"version = 2\n\n" + v2body,
		`version = 3

[plugins."io.containerd.cri.v1.images".registry]
  config_path = "` + CertsDir + `"
`,
	}
}
