package kindcfg

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"

	"github.com/kubevirt/kubevirtci-go/internal/config"
)

const node122 = "quay.io/kubevirtci/kindest_node:v1.22.2@sha256:f638a08c1f68fe2a99e724ace6df233a546eaf6713019a0b310130a4f91ebe7f"

// opts122 are kind-1.22-sriov's options.
var opts122 = Options{WorkerKubelet: map[string]string{
	"cpu-manager-policy": "static", "feature-gates": "CPUManager=true",
	"kube-reserved": "cpu=500m", "system-reserved": "cpu=500m",
}}

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func load(t *testing.T, kv ...string) *config.Config {
	t.Helper()
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	c, err := config.Load(func(k string) string { return m[k] }, "/src/kubevirtci", func(string, bool) (config.Defaults, error) {
		return config.Defaults{NodeImage: node122}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type goldenCase struct {
	file  string
	nodes int
	etcd  bool
	kind  string // KIND_VERSION, "" for the compiled-in one
}

var goldenCases = []goldenCase{
	{"1-node.golden", 1, true, ""},
	{"1-node-etcd-on-disk.golden", 1, false, ""},
	{"2-nodes.golden", 2, true, ""},
	{"2-nodes-etcd-on-disk.golden", 2, false, ""},
	{"3-nodes.golden", 3, true, ""},
	{"3-nodes-etcd-on-disk.golden", 3, false, ""},
	{"3-nodes-kind-0.11.1.golden", 3, true, "0.11.1"},
}

func (g goldenCase) config(t *testing.T) *config.Config {
	return load(t,
		"KUBEVIRT_NUM_NODES", fmt.Sprint(g.nodes),
		"KUBEVIRT_WITH_KIND_ETCD_IN_MEMORY", fmt.Sprint(g.etcd),
		"KIND_VERSION", g.kind)
}

func TestGolden(t *testing.T) {
	for _, g := range goldenCases {
		t.Run(g.file, func(t *testing.T) {
			got, err := Render(g.config(t), opts122)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := Render(g.config(t), opts122)
			if !bytes.Equal(got, again) {
				t.Fatal("two renders of the same settings differ")
			}
			path := filepath.Join("testdata", g.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/kindcfg -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs (go test ./internal/kindcfg -update rewrites it)\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
			}
		})
	}
}

// TestDecodesAsKindConfig decodes every golden file strictly (unknown fields
// fail) into kind's own v1alpha4 types, the way kind loads a config file, and
// checks the fields that matter.
func TestDecodesAsKindConfig(t *testing.T) {
	for _, g := range goldenCases {
		t.Run(g.file, func(t *testing.T) {
			raw, err := Render(g.config(t), opts122)
			if err != nil {
				t.Fatal(err)
			}
			var cl v1alpha4.Cluster
			if err := yaml.UnmarshalStrict(raw, &cl); err != nil {
				t.Fatalf("strict decode: %v\n%s", err, raw)
			}
			if cl.Kind != "Cluster" || cl.APIVersion != "kind.x-k8s.io/v1alpha4" || cl.Name != "sriov" {
				t.Errorf("type/name: %q %q %q", cl.Kind, cl.APIVersion, cl.Name)
			}
			if len(cl.Nodes) != g.nodes {
				t.Fatalf("%d nodes, want %d", len(cl.Nodes), g.nodes)
			}
			if cl.Nodes[0].Role != v1alpha4.ControlPlaneRole || len(cl.Nodes[0].ExtraMounts) != 0 || len(cl.Nodes[0].KubeadmConfigPatches) != 0 {
				t.Errorf("first node is not a plain control plane: %+v", cl.Nodes[0])
			}
			wantMounts := []v1alpha4.Mount{
				{ContainerPath: "/var/log/audit", HostPath: "/var/log/audit", Readonly: true},
				{ContainerPath: "/dev/vfio/", HostPath: "/dev/vfio/"},
			}
			for i, n := range cl.Nodes {
				if n.Image != node122 {
					t.Errorf("node %d image %q", i, n.Image)
				}
				if i == 0 {
					continue
				}
				if n.Role != v1alpha4.WorkerRole {
					t.Errorf("node %d role %q", i, n.Role)
				}
				if !reflect.DeepEqual(n.ExtraMounts, wantMounts) {
					t.Errorf("node %d mounts %+v", i, n.ExtraMounts)
				}
				if len(n.KubeadmConfigPatches) != 1 {
					t.Fatalf("node %d: %d kubeadm patches", i, len(n.KubeadmConfigPatches))
				}
				var join struct {
					Kind             string
					NodeRegistration struct {
						KubeletExtraArgs map[string]string `json:"kubeletExtraArgs"`
					} `json:"nodeRegistration"`
				}
				if err := yaml.UnmarshalStrict([]byte(n.KubeadmConfigPatches[0]), &join); err != nil {
					t.Fatal(err)
				}
				wantArgs := map[string]string{
					"feature-gates":      "CPUManager=true",
					"cpu-manager-policy": "static",
					"kube-reserved":      "cpu=500m",
					"system-reserved":    "cpu=500m",
				}
				if join.Kind != "JoinConfiguration" || !reflect.DeepEqual(join.NodeRegistration.KubeletExtraArgs, wantArgs) {
					t.Errorf("node %d join patch: %+v", i, join)
				}
			}
			if !g.etcd {
				if len(cl.KubeadmConfigPatches) != 0 {
					t.Errorf("etcd on disk but cluster patches %q", cl.KubeadmConfigPatches)
				}
			} else {
				if len(cl.KubeadmConfigPatches) != 1 {
					t.Fatalf("cluster patches %q", cl.KubeadmConfigPatches)
				}
				var cc struct {
					Kind string
					Etcd struct {
						Local struct {
							DataDir string `json:"dataDir"`
						}
					}
				}
				if err := yaml.UnmarshalStrict([]byte(cl.KubeadmConfigPatches[0]), &cc); err != nil {
					t.Fatal(err)
				}
				if cc.Kind != "ClusterConfiguration" || cc.Etcd.Local.DataDir != "/tmp/kind-cluster-etcd" {
					t.Errorf("etcd patch: %+v", cc)
				}
			}
			if len(cl.ContainerdConfigPatches) == 0 {
				t.Error("no containerd patch")
			}
		})
	}
}

// Base containerd configs as node images ship them (trimmed).
const (
	baseV2 = `version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
`
	baseV3 = `version = 3
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
`
)

// applyLikeKind mirrors kind's containerd patching rule (v0.32+ with
// versionAware, older without): a patch whose `version` differs from the
// file's is skipped, the others are merged.
func applyLikeKind(t *testing.T, base string, patches []string, versionAware bool) map[string]any {
	t.Helper()
	var cfg map[string]any
	if _, err := toml.Decode(base, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, p := range patches {
		var pm map[string]any
		if _, err := toml.Decode(p, &pm); err != nil {
			t.Fatalf("patch is not TOML: %v\n%s", err, p)
		}
		if v, ok := pm["version"]; versionAware && ok && v != cfg["version"] {
			continue
		}
		merge(cfg, pm)
	}
	return cfg
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func lookup(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func TestContainerdPatches(t *testing.T) {
	const v2Plugin, v3Plugin = "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images"

	current := ContainerdPatches(load(t))
	if len(current) != 2 {
		t.Fatalf("kind %s: want a version 2 and a version 3 patch, got %q", config.CompiledKindVersion, current)
	}
	// A version 2 file (containerd 1.6 in the 1.22 node image, or 2.x with a
	// v2 file) gets the v2 key and stays version 2.
	got := applyLikeKind(t, baseV2, current, true)
	if got["version"] != int64(2) || lookup(got, "plugins", v2Plugin, "registry", "config_path") != CertsDir || lookup(got, "plugins", v3Plugin) != nil {
		t.Errorf("v2 file patched wrongly: %v", got)
	}
	if lookup(got, "plugins", v2Plugin, "sandbox_image") == nil {
		t.Errorf("patch dropped existing settings: %v", got)
	}
	// A version 3 file (containerd 2.x) gets the v3 key.
	got = applyLikeKind(t, baseV3, current, true)
	if got["version"] != int64(3) || lookup(got, "plugins", v3Plugin, "registry", "config_path") != CertsDir || lookup(got, "plugins", v2Plugin) != nil {
		t.Errorf("v3 file patched wrongly: %v", got)
	}

	// kind before 0.32 merges every patch: only one, without `version`, so
	// a version 2 file stays version 2.
	old := ContainerdPatches(load(t, "KIND_VERSION", "0.31.0"))
	if len(old) != 1 || strings.Contains(old[0], "version") {
		t.Fatalf("kind 0.31.0 patches: %q", old)
	}
	got = applyLikeKind(t, baseV2, old, false)
	if got["version"] != int64(2) || lookup(got, "plugins", v2Plugin, "registry", "config_path") != CertsDir {
		t.Errorf("old kind, v2 file: %v", got)
	}
	// The current pair given to an old kind would break the file: this is
	// why old kinds get one patch.
	if got := applyLikeKind(t, baseV2, current, false); got["version"] != int64(3) {
		t.Errorf("expected the version-3 patch to clobber the version without version-aware patching; got %v", got["version"])
	}
}

func TestRenderErrors(t *testing.T) {
	c := load(t)
	c.EtcdDataDir = "/var/lib/etcd"
	if _, err := Render(c, opts122); err == nil || !strings.Contains(err.Error(), "not under /tmp") {
		t.Errorf("etcd dir outside /tmp: %v", err)
	}
	c = load(t)
	c.EtcdDataDir = "/tmp/../var/etcd"
	if _, err := Render(c, opts122); err == nil {
		t.Error("etcd dir escaping /tmp accepted")
	}
	c = load(t)
	c.NumNodes = 0
	if _, err := Render(c, opts122); err == nil {
		t.Error("0 nodes accepted")
	}
}

func TestOtherSettingsReachTheConfig(t *testing.T) {
	raw, err := Render(load(t, "CLUSTER_NAME", "sriov2", "KUBEVIRT_NUM_NODES", "2",
		"KIND_NODE_IMAGE", "kindest/node:v1.23.0"), opts122)
	if err != nil {
		t.Fatal(err)
	}
	var cl v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(raw, &cl); err != nil {
		t.Fatal(err)
	}
	if cl.Name != "sriov2" || cl.Nodes[0].Image != "kindest/node:v1.23.0" || cl.Nodes[1].Image != "kindest/node:v1.23.0" {
		t.Errorf("name %q images %q %q", cl.Name, cl.Nodes[0].Image, cl.Nodes[1].Image)
	}
}

// TestKindSRIOVOptions: the kubelet flags of kind-sriov's workers, the
// cgroup v1 patch and IPFAMILY reach the config kind reads.
func TestKindSRIOVOptions(t *testing.T) {
	o := Options{
		WorkerKubelet: map[string]string{"cpu-manager-policy": "static", "topology-manager-policy": "single-numa-node"},
		AllowCgroupV1: true,
	}
	raw, err := Render(load(t, "KUBEVIRT_NUM_NODES", "3", "IPFAMILY", "dual"), o)
	if err != nil {
		t.Fatal(err)
	}
	var cl v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(raw, &cl); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if cl.Networking.IPFamily != v1alpha4.DualStackFamily {
		t.Errorf("ipFamily %q, want dual", cl.Networking.IPFamily)
	}
	var cgroup bool
	for _, p := range cl.KubeadmConfigPatches {
		cgroup = cgroup || strings.Contains(p, "kind: KubeletConfiguration") && strings.Contains(p, "failCgroupV1: false")
	}
	if !cgroup {
		t.Errorf("no failCgroupV1 patch: %q", cl.KubeadmConfigPatches)
	}
	for _, n := range cl.Nodes[1:] {
		want := "kind: JoinConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n    cpu-manager-policy: static\n    topology-manager-policy: single-numa-node\n"
		if len(n.KubeadmConfigPatches) != 1 || n.KubeadmConfigPatches[0] != want {
			t.Errorf("worker patches %q, want %q", n.KubeadmConfigPatches, want)
		}
	}
	// The default: IPv4 is kind's default, not written; no cgroup patch.
	raw, _ = Render(load(t, "KUBEVIRT_NUM_NODES", "2"), Options{})
	if strings.Contains(string(raw), "ipFamily") || strings.Contains(string(raw), "failCgroupV1") || strings.Contains(string(raw), "JoinConfiguration") {
		t.Errorf("unasked settings rendered:\n%s", raw)
	}
}
