package nodeimage

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/kubevirt/kubevirtci-go/images"
)

// component is a set of Go commands built from one module: a build module
// under images/build/, or this project's own module (Module == "").
type component struct {
	Name string // names the cache directory
	// Role names the build's output in the node build (bins["kubernetes"],
	// ...) when it differs from Name (kubernetes-1.36 is a "kubernetes").
	Role     string
	Module   string   // directory under images/build; "" for this project's module
	Packages []string // import paths (or ./relative paths in this project's module)
	Ldflags  string
	// Cgo builds with cgo, linked statically (flannel's udp backend has C
	// code on amd64); it needs gcc and libc6-dev on the build host.
	Cgo bool
	// Dir, when set, is the module's directory (an unpacked source
	// archive) instead of Module; SourceKey then identifies its content
	// (the archive's sha256), so that the tree need not be hashed.
	Dir       string
	SourceKey string
	// Output names the binary of a single package (default: the name
	// `go build` gives it).
	Output string
	// Flags are more `go build` flags, such as -mod=vendor or -tags.
	Flags []string
	// Toolchain, when set, is the Go toolchain to build with (GOTOOLCHAIN;
	// the go command fetches it from the module proxy).
	Toolchain string
	// Tags are build tags (added to netgo,osusergo for Cgo builds).
	Tags []string
	// Key are more inputs of the build that the module does not show (such
	// as the versions the ldflags or generated code depend on).
	Key []string
	// prepare, when set, runs before the build and returns extra arguments
	// for `go build` (k8s uses it to generate code and pass -modfile).
	// key is the component's input hash.
	prepare func(ctx context.Context, b *builder, c *component, key string) ([]string, error)
}

// role is the name the node build knows the component's output by.
func (c *component) role() string {
	if c.Role != "" {
		return c.Role
	}
	return c.Name
}

// binary is the file name of package pkg's command in the build's output.
func (c *component) binary(pkg string) string {
	if c.Output != "" && len(c.Packages) == 1 {
		return c.Output
	}
	return binaryName(pkg)
}

// k8sCommands are the Kubernetes commands the node image needs.
var k8sCommands = []string{"kubelet", "kubeadm", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"}

func k8sComponent(n images.Node) component {
	var pkgs []string
	for _, c := range k8sCommands {
		pkgs = append(pkgs, "k8s.io/kubernetes/cmd/"+c)
	}
	major, minor := k8sMajorMinor(n.Kubernetes)
	var ld []string
	for _, p := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ld = append(ld,
			"-X", p+".gitVersion="+n.Kubernetes,
			"-X", p+".gitMajor="+major,
			"-X", p+".gitMinor="+minor,
			"-X", p+".gitTreeState=clean",
		)
	}
	var tags []string
	if n.KubernetesTags != "" {
		tags = strings.Split(n.KubernetesTags, ",")
	}
	return component{
		Name:     cacheName("kubernetes", n.BuildModule, "k8s"),
		Role:     "kubernetes",
		Module:   n.BuildModule,
		Packages: pkgs,
		Ldflags:  strings.Join(ld, " "),
		Tags:     tags,
		Key:      []string{n.KubeOpenAPI, n.Kubernetes, n.KubernetesStaging},
		prepare:  prepareOpenAPI,
	}
}

// cacheName names a component's cache directory: base for the module
// named first (k8s: kubernetes), base plus the module's suffix for the
// others (k8s-1.36: kubernetes-1.36), so that the builds of two nodes
// keep their own cache entries (a build prunes the entries of its name).
func cacheName(base, module, first string) string {
	if module == first {
		return base
	}
	return base + strings.TrimPrefix(module, first)
}

// k8sMajorMinor splits "v1.22.2" into "1" and "22".
func k8sMajorMinor(v string) (string, string) {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return "", ""
	}
	return parts[0], parts[1]
}

func cniComponents() []component {
	const p = "github.com/containernetworking/plugins/plugins/"
	var pkgs []string
	for _, n := range []string{
		"main/bridge", "main/host-device", "main/ipvlan", "main/loopback", "main/macvlan", "main/ptp", "main/vlan",
		"ipam/host-local", "ipam/static", "ipam/dhcp",
		"meta/portmap", "meta/tuning", "meta/bandwidth", "meta/firewall", "meta/sbr", "meta/vrf",
	} {
		pkgs = append(pkgs, p+n)
	}
	return []component{
		{Name: "cni-plugins", Module: "cniplugins", Packages: pkgs,
			Ldflags: "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=" + images.CNIPlugins},
		{Name: "cni-flannel", Module: "cniflannel", Packages: []string{p + "meta/flannel"},
			Ldflags: "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=" + images.CNIFlannelPlugins},
	}
}

func etcdComponent(n images.Node) component {
	return component{Name: cacheName("etcd", n.EtcdModule, "etcd"), Role: "etcd", Module: n.EtcdModule, Packages: []string{"go.etcd.io/etcd/server/v3"}}
}

func corednsComponent(n images.Node) component {
	return component{Name: cacheName("coredns", n.CoreDNSModule, "coredns"), Role: "coredns", Module: n.CoreDNSModule, Packages: []string{"github.com/coredns/coredns"},
		Ldflags: "-X github.com/coredns/coredns/coremain.GitCommit=" + n.CoreDNS}
}

// containerdComponent builds containerd, ctr and the runc shim the way
// kind's base image does (make bin/ctr bin/containerd
// bin/containerd-shim-runc-v2 with kind's build tags), static without cgo.
func containerdComponent(n images.Node) component {
	const p = "github.com/containerd/containerd/v2"
	return component{Name: "containerd", Module: "containerd",
		Packages: []string{p + "/cmd/containerd", p + "/cmd/ctr", p + "/cmd/containerd-shim-runc-v2"},
		Ldflags:  "-X " + p + "/version.Version=" + n.Containerd + " -X " + p + "/version.Package=github.com/containerd/containerd/v2",
		Tags:     []string{"no_aufs", "no_zfs", "no_btrfs", "no_devmapper", "urfave_cli_no_docs"},
		Key:      []string{n.Containerd}}
}

// runcComponent builds runc with seccomp (cgo, libseccomp linked
// statically: the build host needs libseccomp-dev).
func runcComponent(n images.Node) component {
	return component{Name: "runc", Module: "runc", Packages: []string{"github.com/opencontainers/runc"},
		Cgo: true, Tags: []string{"seccomp", "urfave_cli_no_docs"}, Key: []string{n.Runc}}
}

// nodeComponents are the components node n's image is built from.
func nodeComponents(n images.Node) []component {
	comps := []component{k8sComponent(n), etcdComponent(n), corednsComponent(n), flannelComponent, crictlComponent, toolsComponent}
	comps = append(comps, cniComponents()...)
	if n.Containerd != "" {
		comps = append(comps, containerdComponent(n))
	}
	if n.Runc != "" {
		comps = append(comps, runcComponent(n))
	}
	return comps
}

var (
	flannelComponent = component{Name: "flannel", Module: "flannel", Packages: []string{"github.com/flannel-io/flannel"},
		Ldflags: "-X github.com/flannel-io/flannel/pkg/version.Version=" + images.Flannel, Cgo: true}
	crictlComponent = component{Name: "crictl", Module: "critools", Packages: []string{"sigs.k8s.io/cri-tools/cmd/crictl"},
		Ldflags: "-X sigs.k8s.io/cri-tools/pkg/version.Version=" + images.CRITools}
	registryComponent = component{Name: "registry", Module: "registry", Packages: []string{"github.com/distribution/distribution/v3/cmd/registry"},
		Ldflags: "-X github.com/distribution/distribution/v3/version.version=" + images.Distribution}
	// toolsComponent are this project's own commands that go into the node:
	// the runtime wrapper and the pause binary.
	toolsComponent = component{Name: "tools", Packages: []string{"./cmd/runc-capwrap", "./images/pause"}}
)

// binaryName is the file name `go build -o DIR/` gives a package's command.
func binaryName(pkg string) string {
	base := path.Base(pkg)
	if len(base) > 1 && base[0] == 'v' && strings.Trim(base[1:], "0123456789") == "" {
		base = path.Base(path.Dir(pkg))
	}
	return base
}

// builder carries the state of one image build.
type builder struct {
	o     Options
	goVer string // `go env GOVERSION`
	work  string // a temporary directory, removed at the end
	gomod string // the module cache
}

func newBuilder(ctx context.Context, o Options) (*builder, error) {
	b := &builder{o: o}
	out, err := o.run(ctx, "go", "env", "GOVERSION", "GOMODCACHE")
	if err != nil {
		return nil, fmt.Errorf("Go is needed to build the images: %w", err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != 2 {
		return nil, fmt.Errorf("go env GOVERSION GOMODCACHE: unexpected output %q", out)
	}
	b.goVer, b.gomod = lines[0], lines[1]
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", o.CacheDir, err)
	}
	b.work, err = os.MkdirTemp(o.CacheDir, "work-")
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (b *builder) close() { os.RemoveAll(b.work) }

// moduleDir is the directory of a build module, or of this project's module.
func (b *builder) moduleDir(c *component) string {
	if c.Dir != "" {
		return c.Dir
	}
	if c.Module == "" {
		return b.o.SourceDir
	}
	return filepath.Join(b.o.SourceDir, "images", "build", c.Module)
}

// componentHash hashes what a component's binaries are built from.
func (b *builder) componentHash(c *component) (string, error) {
	h := newHasher()
	h.add(recipe, c.Name, b.goVer, runtime.GOARCH, c.Ldflags, fmt.Sprint(c.Cgo), strings.Join(c.Packages, ","),
		c.Output, strings.Join(c.Flags, " "), c.Toolchain)
	if c.Dir != "" {
		if c.SourceKey == "" {
			return "", fmt.Errorf("%s: a component built from %s needs a SourceKey", c.Name, c.Dir)
		}
		h.add("source", c.SourceKey)
	} else if c.Module != "" {
		if err := h.addDir(b.moduleDir(c), nil); err != nil {
			return "", err
		}
	} else {
		for _, f := range []string{"go.mod", "go.sum"} {
			data, err := os.ReadFile(filepath.Join(b.o.SourceDir, f))
			if err != nil {
				return "", err
			}
			h.add(f, string(data))
		}
		for _, p := range c.Packages {
			if err := h.addDir(filepath.Join(b.o.SourceDir, p), skipTests); err != nil {
				return "", err
			}
		}
	}
	// Added only when set, so that the hashes of components without
	// them stay what they were.
	if len(c.Key) > 0 {
		h.add(c.Key...)
	}
	if len(c.Tags) > 0 {
		h.add("tags", strings.Join(c.Tags, ","))
	}
	return h.hex()[:16], nil
}

// build builds a component's commands (static: CGO_ENABLED=0, or cgo linked
// statically for components that need cgo) into a cache
// directory named after its inputs, and returns that directory. A directory
// that is complete is reused as it is.
func (b *builder) build(ctx context.Context, c component) (string, error) {
	key, err := b.componentHash(&c)
	if err != nil {
		return "", err
	}
	out := filepath.Join(b.o.CacheDir, "bin", c.Name+"-"+key)
	if _, err := os.Stat(filepath.Join(out, ".complete")); err == nil {
		b.o.Log.Debugf("%s: reusing %s", c.Name, out)
		b.prune(&c, key)
		return out, nil
	}
	if err := os.RemoveAll(out); err != nil {
		return "", err
	}
	tmp := out + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	var extra []string
	if c.prepare != nil {
		if extra, err = c.prepare(ctx, b, &c, key); err != nil {
			return "", err
		}
	}
	args := []string{"CGO_ENABLED=0"}
	if c.Cgo {
		args[0] = "CGO_ENABLED=1"
	}
	if c.Toolchain != "" {
		args = append(args, "GOTOOLCHAIN="+c.Toolchain)
	}
	args = append(args, "nice", "go", "build", "-C", b.moduleDir(&c), "-trimpath")
	ld := "-s -w"
	tags := c.Tags
	if c.Cgo {
		tags = append([]string{"netgo", "osusergo"}, tags...)
		ld += " -linkmode=external -extldflags=-static"
	}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	args = append(args, extra...)
	args = append(args, c.Flags...)
	if c.Ldflags != "" {
		ld += " " + c.Ldflags
	}
	args = append(args, "-ldflags", ld)
	if len(c.Packages) == 1 {
		args = append(args, "-o", filepath.Join(tmp, c.binary(c.Packages[0])))
	} else {
		args = append(args, "-o", tmp+string(filepath.Separator))
	}
	args = append(args, c.Packages...)
	if _, err := b.o.Runner.Run(ctx, nil, "env", args...); err != nil {
		return "", err
	}
	for _, p := range c.Packages {
		if _, err := os.Stat(filepath.Join(tmp, c.binary(p))); err != nil {
			return "", fmt.Errorf("%s: go build did not produce %s: %w", c.Name, c.binary(p), err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), []byte(key+"\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	b.prune(&c, key)
	return out, nil
}

// prune removes the cache entries of a component's earlier inputs.
func (b *builder) prune(c *component, key string) {
	pruneSiblings(filepath.Join(b.o.CacheDir, "bin"), c.Name+"-", c.Name+"-"+key)
	pruneSiblings(filepath.Join(b.o.CacheDir, "src"), c.Name+"-", c.Name+"-"+key)
}

// pruneSiblings removes the entries of dir named prefix+<16 hex digits>
// (with any suffix such as .tmp or .complete) other than keep and its
// marker: outputs of earlier inputs that this cache no longer needs.
func pruneSiblings(dir, prefix, keep string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, prefix) || n == keep || n == keep+".complete" {
			continue
		}
		key, _, _ := strings.Cut(strings.TrimPrefix(n, prefix), ".")
		if len(key) != 16 || strings.Trim(key, "0123456789abcdef") != "" {
			continue
		}
		_ = os.RemoveAll(filepath.Join(dir, n))
	}
}

// goModDir returns the directory of module@version in the module cache,
// downloading it when needed (from within module dir's context).
func (b *builder) goModDir(ctx context.Context, dir, module string) (string, error) {
	out, err := b.o.run(ctx, "go", "list", "-C", dir, "-m", "-f", "{{.Dir}}", module)
	if err != nil {
		return "", err
	}
	d := strings.TrimSpace(string(out))
	if d == "" {
		if _, err := b.o.run(ctx, "go", "mod", "download", "-C", dir, module); err != nil {
			return "", err
		}
		if out, err = b.o.run(ctx, "go", "list", "-C", dir, "-m", "-f", "{{.Dir}}", module); err != nil {
			return "", err
		}
		d = strings.TrimSpace(string(out))
	}
	if d == "" {
		return "", fmt.Errorf("module %s has no directory in the module cache", module)
	}
	return d, nil
}
