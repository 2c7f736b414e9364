package nodeimage

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"text/template"

	"github.com/BurntSushi/toml"
	"sigs.k8s.io/yaml"

	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
)

func sourceDir(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := FindModuleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// requireLine finds "module version" in a go.mod's require or replace lines.
func goModHas(t *testing.T, gomod, line string) bool {
	t.Helper()
	b, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "require "))
		if strings.Join(strings.Fields(l), " ") == line {
			return true
		}
	}
	return false
}

// nodes are the node images the project builds.
var nodes = map[string]images.Node{"Node122": images.Node122, "Node136": images.Node136}

// The build modules must build what images/versions.go pins.
func TestBuildModulesMatchVersions(t *testing.T) {
	src := sourceDir(t)
	mod := func(m string) string { return filepath.Join(src, "images", "build", m, "go.mod") }
	cases := []struct{ gomod, line string }{
		{mod("k8s"), "go 1.16"},
		{mod("flannel"), "github.com/flannel-io/flannel " + images.Flannel},
		{mod("cniplugins"), "github.com/containernetworking/plugins " + images.CNIPlugins},
		{mod("cniflannel"), "github.com/containernetworking/plugins " + images.CNIFlannelPlugins},
		{mod("critools"), "sigs.k8s.io/cri-tools " + images.CRITools},
		{mod("registry"), "github.com/distribution/distribution/v3 " + images.Distribution},
	}
	for _, n := range nodes {
		cases = append(cases,
			struct{ gomod, line string }{mod(n.BuildModule), "k8s.io/kubernetes " + n.Kubernetes},
			struct{ gomod, line string }{mod(n.EtcdModule), "go.etcd.io/etcd/server/v3 " + n.Etcd},
			struct{ gomod, line string }{mod(n.CoreDNSModule), "github.com/coredns/coredns " + n.CoreDNS},
		)
		if n.Containerd != "" {
			cases = append(cases, struct{ gomod, line string }{mod("containerd"), "github.com/containerd/containerd/v2 " + n.Containerd})
		}
		if n.Runc != "" {
			cases = append(cases, struct{ gomod, line string }{mod("runc"), "github.com/opencontainers/runc " + n.Runc})
		}
	}
	for _, c := range cases {
		if !goModHas(t, c.gomod, c.line) {
			t.Errorf("%s: no line %q (images/versions.go pins it)", c.gomod, c.line)
		}
	}
	for name, n := range nodes {
		gomod := mod(n.BuildModule)
		// The kube-openapi Kubernetes pins (required directly where
		// openapi-gen is built from it, indirectly elsewhere).
		if !goModHas(t, gomod, "k8s.io/kube-openapi "+n.KubeOpenAPI) && !goModHas(t, gomod, "k8s.io/kube-openapi "+n.KubeOpenAPI+" // indirect") {
			t.Errorf("%s: k8s.io/kube-openapi is not %s (%s.KubeOpenAPI)", gomod, n.KubeOpenAPI, name)
		}
		b, err := os.ReadFile(gomod)
		if err != nil {
			t.Fatal(err)
		}
		staging := buildModuleStaging(b)
		if len(staging) < 25 {
			t.Errorf("%s replaces %d k8s.io staging modules, want all of them (%v)", gomod, len(staging), staging)
		}
		for s, v := range staging {
			if v != n.KubernetesStaging {
				t.Errorf("%s: k8s.io/%s => %s, want %s (%s.KubernetesStaging)", gomod, s, v, n.KubernetesStaging, name)
			}
		}
		// Every staging module of k8s.io/kubernetes, when its go.mod is in
		// the module cache (the build checks it in any case).
		kmod := filepath.Join(goModCache(t), "cache", "download", "k8s.io", "kubernetes", "@v", n.Kubernetes+".mod")
		if kb, err := os.ReadFile(kmod); err == nil {
			for _, s := range stagingModules(kb) {
				if staging[s] == "" {
					t.Errorf("%s does not replace k8s.io/%s, a staging module of k8s.io/kubernetes %s", gomod, s, n.Kubernetes)
				}
			}
		} else {
			t.Logf("%s: not in the module cache, staging list not compared", kmod)
		}
	}
	// The project's own kind library is the version whose base files go into the node.
	if !goModHas(t, filepath.Join(src, "go.mod"), "sigs.k8s.io/kind "+images.Kind+" // indirect") &&
		!goModHas(t, filepath.Join(src, "go.mod"), "sigs.k8s.io/kind "+images.Kind) {
		t.Errorf("go.mod does not require sigs.k8s.io/kind %s", images.Kind)
	}
}

func goModCache(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("GOMODCACHE"); d != "" {
		return d
	}
	if d := os.Getenv("GOPATH"); d != "" {
		return filepath.Join(filepath.SplitList(d)[0], "pkg", "mod")
	}
	h, _ := os.UserHomeDir()
	return filepath.Join(h, "go", "pkg", "mod")
}

func TestStagingModules(t *testing.T) {
	kmod := []byte("module k8s.io/kubernetes\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/kms => ./staging/src/k8s.io/kms\n\tgithub.com/x/y => github.com/x/y v1.0.0\n)\nreplace k8s.io/cri-api => ./staging/src/k8s.io/cri-api\n")
	if got, want := stagingModules(kmod), []string{"api", "cri-api", "kms"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stagingModules = %v, want %v", got, want)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), kmod, 0o644)
	build := filepath.Join(dir, "build.mod")
	os.WriteFile(build, []byte("module x\nreplace (\n\tk8s.io/api => k8s.io/api v0.36.1\n\tk8s.io/cri-api => k8s.io/cri-api v0.36.1\n)\n"), 0o644)
	_, err := checkStagingReplaced(dir, build)
	if err == nil || !strings.Contains(err.Error(), "k8s.io/kms") || strings.Contains(err.Error(), "k8s.io/api,") {
		t.Errorf("want an error naming k8s.io/kms only, got %v", err)
	}
	os.WriteFile(build, []byte("module x\nreplace k8s.io/api => k8s.io/api v0.36.1\nreplace k8s.io/cri-api => k8s.io/cri-api v0.36.1\nreplace k8s.io/kms => k8s.io/kms v0.36.1\n"), 0o644)
	if got, err := checkStagingReplaced(dir, build); err != nil || len(got) != 3 {
		t.Errorf("checkStagingReplaced = %v, %v", got, err)
	}
}

func TestContainerdConfig(t *testing.T) {
	b, err := containerdConfig(images.Node122)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Version int
		Plugins map[string]struct {
			SandboxImage             string `toml:"sandbox_image"`
			RestrictOOMScoreAdj      bool   `toml:"restrict_oom_score_adj"`
			TolerateMissingHugepages bool   `toml:"tolerate_missing_hugepages_controller"`
			Containerd               struct {
				DefaultRuntimeName string `toml:"default_runtime_name"`
				Runtimes           map[string]struct {
					RuntimeType     string `toml:"runtime_type"`
					BaseRuntimeSpec string `toml:"base_runtime_spec"`
					Options         struct {
						SystemdCgroup bool
						BinaryName    string
					}
				}
			}
			Registry map[string]any
		}
	}
	md, err := toml.Decode(string(b), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	cri, ok := cfg.Plugins["io.containerd.grpc.v1.cri"]
	if cfg.Version != 2 || !ok {
		t.Fatalf("want a version 2 config with the CRI plugin, got %+v", cfg)
	}
	if want := ControlPlaneImages(images.Node122).Pause; cri.SandboxImage != want || want != "k8s.gcr.io/pause:3.5" {
		t.Errorf("sandbox_image = %q, want the preloaded %q", cri.SandboxImage, want)
	}
	if !cri.RestrictOOMScoreAdj {
		t.Error("restrict_oom_score_adj must be true")
	}
	for _, name := range []string{"runc", "test-handler"} {
		rt := cri.Containerd.Runtimes[name]
		if rt.Options.SystemdCgroup || rt.Options.BinaryName != WrapperPath || rt.BaseRuntimeSpec != "/etc/containerd/cri-base.json" {
			t.Errorf("runtime %s = %+v, want SystemdCgroup false, BinaryName %s and kind's base spec", name, rt, WrapperPath)
		}
	}
	if got := cri.Registry["config_path"]; got != CertsDir {
		t.Errorf("registry config_path = %v, want %s", got, CertsDir)
	}
	if _, has := cri.Registry["mirrors"]; has {
		t.Error("registry mirrors is deprecated: use config_path")
	}
	if und := md.Undecoded(); len(und) > 0 {
		t.Logf("keys not checked: %v", und)
	}
}

// containerd 2's config (version 3) for the nodes whose containerd is built.
func TestContainerd2Config(t *testing.T) {
	b, err := containerdConfig(images.Node136)
	if err != nil {
		t.Fatal(err)
	}
	type runtime struct {
		RuntimeType     string `toml:"runtime_type"`
		BaseRuntimeSpec string `toml:"base_runtime_spec"`
		Options         struct {
			SystemdCgroup bool
			BinaryName    string
		}
	}
	var cfg struct {
		Version int
		Plugins struct {
			Images struct {
				Snapshotter           string
				DiscardUnpackedLayers bool              `toml:"discard_unpacked_layers"`
				PinnedImages          map[string]string `toml:"pinned_images"`
				Registry              map[string]any
			} `toml:"io.containerd.cri.v1.images"`
			Runtime struct {
				RestrictOOMScoreAdj bool `toml:"restrict_oom_score_adj"`
				TolerateHugetlb     bool `toml:"tolerate_missing_hugetlb_controller"`
				Containerd          struct {
					DefaultRuntimeName string `toml:"default_runtime_name"`
					Runtimes           map[string]runtime
				}
			} `toml:"io.containerd.cri.v1.runtime"`
		}
	}
	md, err := toml.Decode(string(b), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version != 3 {
		t.Fatalf("version = %d, want 3", cfg.Version)
	}
	im, rt := cfg.Plugins.Images, cfg.Plugins.Runtime
	if want := "registry.k8s.io/pause:3.10.2"; im.PinnedImages["sandbox"] != want || ControlPlaneImages(images.Node136).Pause != want {
		t.Errorf("pinned sandbox image = %q, want the preloaded %s", im.PinnedImages["sandbox"], want)
	}
	// kind's entrypoint rewrites this exact text to change the snapshotter.
	if im.Snapshotter != "overlayfs" || !strings.Contains(string(b), `snapshotter = "overlayfs"`) {
		t.Errorf("snapshotter = %q, want overlayfs", im.Snapshotter)
	}
	if got := im.Registry["config_path"]; got != CertsDir {
		t.Errorf("registry config_path = %v, want %s", got, CertsDir)
	}
	if _, has := im.Registry["mirrors"]; has {
		t.Error("containerd 2 refuses the registry mirrors key: use config_path")
	}
	if !rt.RestrictOOMScoreAdj || !rt.TolerateHugetlb {
		t.Errorf("restrict_oom_score_adj = %v, tolerate_missing_hugetlb_controller = %v: want both true", rt.RestrictOOMScoreAdj, rt.TolerateHugetlb)
	}
	if rt.Containerd.DefaultRuntimeName != "runc" {
		t.Errorf("default runtime %q, want runc", rt.Containerd.DefaultRuntimeName)
	}
	for _, name := range []string{"runc", "test-handler"} {
		r := rt.Containerd.Runtimes[name]
		if !r.Options.SystemdCgroup || r.Options.BinaryName != WrapperPath || r.BaseRuntimeSpec != "/etc/containerd/cri-base.json" || r.RuntimeType != "io.containerd.runc.v2" {
			t.Errorf("runtime %s = %+v, want runc.v2, SystemdCgroup true, BinaryName %s and kind's base spec", name, r, WrapperPath)
		}
	}
	if und := md.Undecoded(); len(und) > 0 {
		t.Errorf("keys this test does not know (a typo is silently ignored by containerd): %v", und)
	}
}

func TestDefaultCNIManifest(t *testing.T) {
	b, err := fs.ReadFile(images.Files, "node/default-cni.yaml")
	if err != nil {
		t.Fatal(err)
	}
	raw := strings.ReplaceAll(string(b), "@FLANNEL_IMAGE@", FlannelImage)
	if !strings.Contains(raw, "would you kindly template this file") {
		t.Fatal("kind templates the manifest only when it carries its marker")
	}
	// What kind's installcni action does with it.
	tpl, err := template.New("cni").Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tpl.Execute(&out, struct{ PodSubnet string }{"10.244.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Spec struct {
			Template struct {
				Spec struct {
					InitContainers, Containers []struct{ Image string }
				}
			}
		}
	}
	var netConf struct {
		Network string
		Backend struct{ Type string }
	}
	found := 0
	for _, doc := range strings.Split(out.String(), "\n---\n") {
		var head struct {
			Kind string
			Data map[string]string
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("bad YAML document: %v\n%s", err, doc)
		}
		switch head.Kind {
		case "DaemonSet":
			found++
			if err := yaml.Unmarshal([]byte(doc), &ds); err != nil {
				t.Fatal(err)
			}
		case "ConfigMap":
			found++
			if err := json.Unmarshal([]byte(head.Data["net-conf.json"]), &netConf); err != nil {
				t.Fatalf("net-conf.json: %v", err)
			}
			var cni struct{ Plugins []struct{ Type string } }
			if err := json.Unmarshal([]byte(head.Data["cni-conf.json"]), &cni); err != nil || len(cni.Plugins) == 0 || cni.Plugins[0].Type != "flannel" {
				t.Errorf("cni-conf.json: %v %+v", err, cni)
			}
		}
	}
	if found != 2 {
		t.Fatalf("want a DaemonSet and a ConfigMap, found %d of them", found)
	}
	if netConf.Network != "10.244.0.0/16" || netConf.Backend.Type != "host-gw" {
		t.Errorf("net-conf.json = %+v, want the pod subnet and host-gw", netConf)
	}
	spec := ds.Spec.Template.Spec
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		if c.Image != FlannelImage {
			t.Errorf("container image %q, want %q", c.Image, FlannelImage)
		}
	}
}

func TestDefaultStorageHasNoPods(t *testing.T) {
	b, err := fs.ReadFile(images.Files, "node/default-storage.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var sc struct {
		Kind, Provisioner string
		Metadata          struct{ Annotations map[string]string }
	}
	if err := yaml.Unmarshal(b, &sc); err != nil {
		t.Fatal(err)
	}
	if sc.Kind != "StorageClass" || sc.Provisioner != "kubernetes.io/no-provisioner" ||
		sc.Metadata.Annotations["storageclass.kubernetes.io/is-default-class"] != "true" {
		t.Errorf("got %+v", sc)
	}
}

func TestCRIBaseSpec(t *testing.T) {
	in := `{"ociVersion":"1.1.0","process":{"args":["sh"],"rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}]},"hooks":{"createContainer":[{"path":"/x"}]}}`
	out, err := criBaseSpec([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		OCIVersion string `json:"ociVersion"`
		Process    map[string]any
		Hooks      map[string][]struct{ Path string }
	}
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatal(err)
	}
	if _, has := s.Process["rlimits"]; has {
		t.Error("rlimits kept")
	}
	cc := s.Hooks["createContainer"]
	if len(cc) != 2 || cc[0].Path != "/x" || cc[1].Path != "/kind/bin/mount-product-files.sh" {
		t.Errorf("createContainer hooks = %+v", cc)
	}
	if s.OCIVersion != "1.1.0" {
		t.Errorf("ociVersion lost: %s", out)
	}
	if _, err := criBaseSpec([]byte("ctr: not found")); err == nil {
		t.Error("want an error for output that is no spec")
	}
	if _, err := criBaseSpec([]byte(`{"root":{}}`)); err == nil {
		t.Error("want an error for a spec without process")
	}
}

func TestCheckKubeadmImages(t *testing.T) {
	n := images.Node122
	all := ControlPlaneImages(n).All()
	if err := checkKubeadmImages(n, all); err != nil {
		t.Fatal(err)
	}
	err := checkKubeadmImages(n, append(all, "k8s.gcr.io/etcd:3.4.13-0"))
	if err == nil || !strings.Contains(err.Error(), "k8s.gcr.io/etcd:3.4.13-0") {
		t.Fatalf("want an error naming the missing image, got %v", err)
	}
	if err := checkKubeadmImages(n, nil); err == nil {
		t.Fatal("want an error for an empty list")
	}
	// What `kubeadm config images list --kubernetes-version <v>` prints, as
	// the kubeadm of each version (built here) printed it.
	for _, c := range []struct {
		n    images.Node
		want []string
	}{
		{images.Node122, []string{"k8s.gcr.io/kube-apiserver:v1.22.2", "k8s.gcr.io/kube-controller-manager:v1.22.2",
			"k8s.gcr.io/kube-scheduler:v1.22.2", "k8s.gcr.io/kube-proxy:v1.22.2", "k8s.gcr.io/pause:3.5",
			"k8s.gcr.io/etcd:3.5.0-0", "k8s.gcr.io/coredns/coredns:v1.8.4"}},
		{images.Node136, []string{"registry.k8s.io/kube-apiserver:v1.36.1", "registry.k8s.io/kube-controller-manager:v1.36.1",
			"registry.k8s.io/kube-scheduler:v1.36.1", "registry.k8s.io/kube-proxy:v1.36.1", "registry.k8s.io/coredns/coredns:v1.14.2",
			"registry.k8s.io/pause:3.10.2", "registry.k8s.io/etcd:3.6.8-0"}},
	} {
		if err := checkKubeadmImages(c.n, c.want); err != nil {
			t.Errorf("%s: %v", c.n.Kubernetes, err)
		}
		if got := ControlPlaneImages(c.n).All(); len(got) != len(c.want) {
			t.Errorf("%s: control-plane images %v, want %v", c.n.Kubernetes, got, c.want)
		}
	}
	if err := checkKubeadmImages(images.Node136, ControlPlaneImages(images.Node122).All()); err == nil {
		t.Error("1.22's images pass as 1.36's")
	}
}

func readTar(t *testing.T, r io.Reader) map[string]*tar.Header {
	t.Helper()
	tr := tar.NewReader(r)
	got := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
	}
}

func TestNodeFiles(t *testing.T) {
	kind := t.TempDir()
	for _, f := range []string{"usr/local/bin/entrypoint", "kind/bin/mount-product-files.sh", "etc/containerd/config.toml",
		"etc/systemd/system/kubelet.service", "etc/systemd/system/containerd-fuse-overlayfs.service", "LICENSES/README.txt"} {
		os.MkdirAll(filepath.Join(kind, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(kind, f), []byte(f), 0o444)
	}
	bins := map[string]string{}
	for name, files := range map[string][]string{
		"kubernetes": {"kubelet", "kubeadm", "kubectl"}, "crictl": {"crictl"}, "tools": {"runc-capwrap", "pause"},
		"cni-plugins": {"bridge", "host-local", "portmap", ".complete"}, "cni-flannel": {"flannel", ".complete"},
	} {
		d := t.TempDir()
		for _, f := range files {
			os.WriteFile(filepath.Join(d, f), []byte(f), 0o755)
		}
		bins[name] = d
	}
	es, err := nodeFiles(images.Node122, kind, bins)
	if err != nil {
		t.Fatal(err)
	}
	data, err := tarEntries(es)
	if err != nil {
		t.Fatal(err)
	}
	got := readTar(t, bytes.NewReader(data))
	want := map[string]int64{
		"usr/local/bin/entrypoint": 0o755, "kind/bin/mount-product-files.sh": 0o755,
		"etc/systemd/system/kubelet.service": 0o644, "etc/containerd/config.toml": 0o644,
		"usr/bin/kubelet": 0o755, "usr/bin/kubeadm": 0o755, "usr/bin/kubectl": 0o755,
		"usr/local/bin/crictl": 0o755, "usr/local/sbin/runc-capwrap": 0o755,
		"opt/cni/bin/bridge": 0o755, "opt/cni/bin/flannel": 0o755, "opt/cni/bin/portmap": 0o755,
		"kind/version": 0o644, "kind/manifests/default-cni.yaml": 0o644, "kind/manifests/default-storage.yaml": 0o644,
		"LICENSES/kind-README.txt": 0o644,
	}
	for name, mode := range want {
		h, ok := got[name]
		if !ok {
			t.Errorf("missing %s", name)
			continue
		}
		if h.Mode != mode {
			t.Errorf("%s mode %o, want %o", name, h.Mode, mode)
		}
	}
	for _, absent := range []string{"etc/systemd/system/containerd-fuse-overlayfs.service", "opt/cni/bin/.complete", "bin/", "usr/bin/"} {
		if _, ok := got[absent]; ok && absent != "usr/bin/" {
			t.Errorf("%s should not be in the layer", absent)
		}
	}
	if h := got["usr/local/bin/containerd"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/usr/bin/containerd" {
		t.Errorf("usr/local/bin/containerd = %+v, want a link to /usr/bin/containerd", h)
	}
	if h := got["etc/systemd/system/multi-user.target.wants/kubelet.service"]; h == nil || h.Typeflag != tar.TypeSymlink {
		t.Error("kubelet is not enabled")
	}
	for name := range got {
		if top, _, _ := strings.Cut(name, "/"); top == "bin" || top == "sbin" || top == "lib" {
			t.Errorf("%s would replace the node's /%s link", name, top)
		}
	}
	// The containerd config in the layer is ours, not kind's.
	for _, e := range es {
		if e.Path == "/etc/containerd/config.toml" && !strings.Contains(string(e.Data), "runc-capwrap") {
			t.Error("kind's containerd config was used")
		}
		if e.Path == "/kind/manifests/default-cni.yaml" && strings.Contains(string(e.Data), "@FLANNEL_IMAGE@") {
			t.Error("flannel image not filled in")
		}
	}
	if err := checkNodePath("/bin/kubectl"); err == nil {
		t.Error("want an error for /bin/kubectl")
	}
}

// A node with containerd and runc built from Go modules gets them where
// kind's base image has them, and containerd 2's config.
func TestNodeFilesContainerd2(t *testing.T) {
	kind := t.TempDir()
	for _, f := range []string{"usr/local/bin/entrypoint", "etc/containerd/config.toml"} {
		os.MkdirAll(filepath.Join(kind, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(kind, f), []byte(f), 0o644)
	}
	bins := map[string]string{}
	for name, files := range map[string][]string{
		"kubernetes": {"kubelet", "kubeadm", "kubectl"}, "crictl": {"crictl"}, "tools": {"runc-capwrap", "pause"},
		"cni-plugins": {"bridge"}, "cni-flannel": {"flannel"},
		"containerd": {"containerd", "ctr", "containerd-shim-runc-v2"}, "runc": {"runc"},
	} {
		d := t.TempDir()
		for _, f := range files {
			os.WriteFile(filepath.Join(d, f), []byte(name+"/"+f), 0o755)
		}
		bins[name] = d
	}
	es, err := nodeFiles(images.Node136, kind, bins)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]entry{}
	for _, e := range es {
		got[e.Path] = e
	}
	for p, src := range map[string]string{
		"/usr/local/bin/containerd": "containerd/containerd", "/usr/local/bin/ctr": "containerd/ctr",
		"/usr/local/bin/containerd-shim-runc-v2": "containerd/containerd-shim-runc-v2", RuncPath: "runc/runc",
		WrapperPath: "tools/runc-capwrap",
	} {
		e, ok := got[p]
		if !ok || e.Linkname != "" || e.Mode != 0o755 {
			t.Errorf("%s = %+v, want an executable file", p, e)
			continue
		}
		if b, _ := os.ReadFile(e.Src); string(b) != src {
			t.Errorf("%s is %q, want %s", p, b, src)
		}
	}
	if v := string(got["/kind/version"].Data); v != "v1.36.1" {
		t.Errorf("/kind/version = %q", v)
	}
	if cfg := string(got["/etc/containerd/config.toml"].Data); !strings.Contains(cfg, "version = 3") || !strings.Contains(cfg, `sandbox = "registry.k8s.io/pause:3.10.2"`) {
		t.Errorf("containerd config is not containerd 2's with the pause image:\n%s", cfg)
	}
	// Debian's packages are left out: nothing else installs containerd or runc.
	for _, p := range nodeRootfs(images.Node136).Packages {
		if p == "containerd" || p == "runc" {
			t.Errorf("the 1.36 tree installs Debian's %s", p)
		}
	}
	// Each node's tree survives the pruning of the other's.
	dir := t.TempDir()
	s122, s136 := nodeRootfs(images.Node122).Name, nodeRootfs(images.Node136).Name
	t122, t136 := s122+"-0123456789abcdef", s136+"-fedcba9876543210"
	for _, d := range []string{t122, t122 + ".complete", t136, t136 + ".complete"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	pruneSiblings(dir, s122+"-", t122)
	pruneSiblings(dir, s136+"-", t136)
	if ents, _ := os.ReadDir(dir); len(ents) != 4 {
		t.Errorf("the trees of the two nodes (%s, %s) prune each other: %d entries left", s122, s136, len(ents))
	}
}

// The two nodes' components keep their own cache entries: pruning one's
// leaves the other's.
func TestNodeComponentsCacheNames(t *testing.T) {
	dir := t.TempDir()
	keep := map[string]string{}
	for _, n := range nodes {
		for _, c := range nodeComponents(n) {
			keep[c.Name] = c.Name + "-0123456789abcdef"
		}
	}
	for _, k := range keep {
		os.Mkdir(filepath.Join(dir, k), 0o755)
	}
	for name, k := range keep {
		pruneSiblings(dir, name+"-", k)
	}
	for _, k := range keep {
		if _, err := os.Stat(filepath.Join(dir, k)); err != nil {
			t.Errorf("%s was pruned by another component's build", k)
		}
	}
	roles := map[string]bool{}
	for _, c := range nodeComponents(images.Node136) {
		roles[c.role()] = true
	}
	for _, r := range []string{"kubernetes", "etcd", "coredns", "containerd", "runc", "tools", "crictl", "cni-plugins"} {
		if !roles[r] {
			t.Errorf("the 1.36 node builds no %s", r)
		}
	}
	if k := k8sComponent(images.Node122); k.Name != "kubernetes" || k.Module != "k8s" {
		t.Errorf("1.22's Kubernetes component is %s from %s: its cache entries would be rebuilt", k.Name, k.Module)
	}
}

func TestWriteTree(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	os.MkdirAll(filepath.Join(root, "dev/pts"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin/a"), []byte("hello"), 0o755)
	os.Link(filepath.Join(root, "usr/bin/a"), filepath.Join(root, "usr/bin/b"))
	os.Symlink("usr/bin", filepath.Join(root, "bin"))
	os.WriteFile(filepath.Join(root, "dev/null-ish"), nil, 0o644)
	var buf bytes.Buffer
	if err := writeTree(&buf, root); err != nil {
		t.Fatal(err)
	}
	got := readTar(t, &buf)
	var names []string
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"bin", "dev/", "usr/", "usr/bin/", "usr/bin/a", "usr/bin/b"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("entries %v, want %v", names, want)
	}
	if h := got["usr/bin/b"]; h.Typeflag != tar.TypeLink || h.Linkname != "usr/bin/a" {
		t.Errorf("hard link = %+v", h)
	}
	if h := got["bin"]; h.Typeflag != tar.TypeSymlink || h.Linkname != "usr/bin" {
		t.Errorf("symlink = %+v", h)
	}
	if h := got["usr/bin/a"]; h.Mode&0o777 != 0o755 || h.Size != 5 {
		t.Errorf("file = %+v", h)
	}
}

func TestOptions(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if _, err := (Options{CRI: "nerdctl"}).complete(); err == nil || !strings.Contains(err.Error(), `"nerdctl"`) {
		t.Errorf("want an error naming the bad engine, got %v", err)
	}
	if _, err := (Options{}).complete(); err == nil {
		t.Error("want an error for an empty engine")
	}
	if _, err := (Options{CRI: "docker", SourceDir: t.TempDir()}).complete(); err == nil || !strings.Contains(err.Error(), "SourceDir") {
		t.Errorf("want an error naming SourceDir, got %v", err)
	}
	o, err := (Options{CRI: "podman", Getenv: env(map[string]string{"HOME": "/home/u"})}).complete()
	if err != nil {
		t.Fatal(err)
	}
	if o.CacheDir != "/home/u/.cache/kubevirtci" || o.SourceDir != sourceDir(t) {
		t.Errorf("defaults: cache %q source %q", o.CacheDir, o.SourceDir)
	}
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"KUBEVIRTCI_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/c"},
		{map[string]string{"XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/x/kubevirtci"},
		{map[string]string{}, ""},
	} {
		if got := DefaultCacheDir(env(c.env)); got != c.want {
			t.Errorf("DefaultCacheDir(%v) = %q, want %q", c.env, got, c.want)
		}
	}
}

func TestImageInputs(t *testing.T) {
	f := (&cmdrun.Fake{}).
		On("abc123\n", nil, "docker", "image", "inspect", "--format", `{{ index .Config.Labels "io.kubevirtci.inputs" }}`, "have").
		On("<no value>\n", nil, "docker", "image", "inspect", "--format", `{{ index .Config.Labels "io.kubevirtci.inputs" }}`, "nolabel").
		On("", errors.New("exit status 1"), "docker", "image", "inspect")
	o := Options{CRI: "docker", Runner: f}
	ctx := context.Background()
	if got := o.imageInputs(ctx, "have"); got != "abc123" {
		t.Errorf("got %q", got)
	}
	if got := o.imageInputs(ctx, "nolabel"); got != "" {
		t.Errorf("got %q", got)
	}
	if got := o.imageInputs(ctx, "missing"); got != "" {
		t.Errorf("got %q", got)
	}
}

func TestBinaryName(t *testing.T) {
	for pkg, want := range map[string]string{
		"go.etcd.io/etcd/server/v3":     "server",
		"github.com/coredns/coredns":    "coredns",
		"k8s.io/kubernetes/cmd/kubelet": "kubelet",
		"./cmd/runc-capwrap":            "runc-capwrap",
		"github.com/x/vault":            "vault",
	} {
		if got := binaryName(pkg); got != want {
			t.Errorf("binaryName(%q) = %q, want %q", pkg, got, want)
		}
	}
}

func TestComponentHashFollowsInputs(t *testing.T) {
	src := t.TempDir()
	mod := filepath.Join(src, "images", "build", "x")
	os.MkdirAll(mod, 0o755)
	os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module x\nrequire a v1\n"), 0o644)
	b := &builder{o: Options{SourceDir: src}, goVer: "go1.26"}
	c := component{Name: "x", Module: "x", Packages: []string{"a"}}
	h1, err := b.componentHash(&c)
	if err != nil {
		t.Fatal(err)
	}
	if h2, _ := b.componentHash(&c); h2 != h1 {
		t.Fatal("hash is not stable")
	}
	os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module x\nrequire a v2\n"), 0o644)
	if h3, _ := b.componentHash(&c); h3 == h1 {
		t.Error("hash did not change with go.mod")
	}
	b.goVer = "go1.27"
	h4, _ := b.componentHash(&c)
	c.Ldflags = "-X a.b=c"
	if h5, _ := b.componentHash(&c); h5 == h4 {
		t.Error("hash did not change with ldflags")
	}
	c.Tags = []string{"providerless"}
	if h6, _ := b.componentHash(&c); h6 == h4 {
		t.Error("hash did not change with build tags")
	}
}

// Kubernetes 1.22 is built without the in-tree cloud providers; 1.36 has
// none to leave out, and its build (and cache entry) stays as it was.
func TestKubernetesBuildTags(t *testing.T) {
	for _, tc := range []struct {
		node images.Node
		want string
	}{{images.Node122, " -tags providerless "}, {images.Node136, ""}} {
		f := &cmdrun.Fake{}
		b := &builder{o: Options{SourceDir: "../..", CacheDir: t.TempDir(), Runner: f}, goVer: "go1.26"}
		c := k8sComponent(tc.node)
		c.prepare = nil // the generated OpenAPI code is not what this test is about
		if _, err := b.build(context.Background(), c); err == nil {
			t.Fatal("the fake go build produced binaries")
		}
		var build string
		for _, cmd := range f.Commands() {
			if strings.Contains(cmd, " go build ") {
				build = cmd
			}
		}
		if build == "" {
			t.Fatalf("%s: no go build in %q", tc.node.Kubernetes, f.Commands())
		}
		if tc.want != "" && !strings.Contains(build, tc.want) {
			t.Errorf("%s: %q lacks %q", tc.node.Kubernetes, build, tc.want)
		}
		if tc.want == "" && strings.Contains(build, "-tags") {
			t.Errorf("%s: %q has build tags", tc.node.Kubernetes, build)
		}
	}
}

func TestOpenAPIPackages(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(s), 0o644)
	}
	write("pkg/apis/a/v1/doc.go", "// +k8s:openapi-gen=true\npackage v1\n")
	write("pkg/apis/b/types.go", "package b\n// +k8s:openapi-gen=false\ntype X struct{}\n")
	write("pkg/other/x.go", "package other\n")
	write("pkg/t/x_test.go", "// +k8s:openapi-gen=true\npackage t\n")
	write("testdata/y/y.go", "// +k8s:openapi-gen=true\npackage y\n")
	got, err := openAPIPackages(root, "k8s.io/m")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"k8s.io/m/pkg/apis/a/v1", "k8s.io/m/pkg/apis/b"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestPruneSiblings(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{
		"kubernetes-0123456789abcdef", "kubernetes-0123456789abcdef.complete",
		"kubernetes-fedcba9876543210", "kubernetes-fedcba9876543210.complete", "kubernetes-1111111111111111.tmp",
		"kubernetes-notahash", "etcd-fedcba9876543210",
	} {
		if err := os.Mkdir(filepath.Join(dir, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pruneSiblings(dir, "kubernetes-", "kubernetes-0123456789abcdef")
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	want := []string{"etcd-fedcba9876543210", "kubernetes-0123456789abcdef", "kubernetes-0123456789abcdef.complete", "kubernetes-notahash"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
}

// Every field of a Node is an input of its image: changing any of them
// (a version, a module, the Kubernetes build tags) must change the hash
// the image is labelled with, or a stale image would count as up to date.
func TestVersionsStringHasEveryNodeField(t *testing.T) {
	base := versionsString(images.Node122)
	v := reflect.ValueOf(&images.Node{}).Elem()
	for i := 0; i < v.NumField(); i++ {
		n := images.Node122
		f := reflect.ValueOf(&n).Elem().Field(i)
		if f.Kind() != reflect.String {
			t.Fatalf("images.Node.%s is a %s: teach versionsString and this test about it", v.Type().Field(i).Name, f.Kind())
		}
		f.SetString(f.String() + "-changed")
		if versionsString(n) == base {
			t.Errorf("changing images.Node.%s leaves the node image's inputs as they were", v.Type().Field(i).Name)
		}
	}
}
