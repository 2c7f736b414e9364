package nodeimage

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/localregistry"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Paths inside the node.
const (
	// WrapperPath is the runtime wrapper in the node; containerd's runc
	// options name it as BinaryName.
	WrapperPath = "/usr/local/sbin/runc-capwrap"
	// KubectlPath is kubectl in the node (/bin/kubectl reaches it too: the
	// root file system has a merged /usr).
	KubectlPath = "/usr/bin/kubectl"
	// CertsDir is containerd's registry configuration directory in the node
	// (hosts.toml files, one directory per registry host:port).
	CertsDir = localregistry.CertsDir
	// RuncPath is runc in a node whose runc is built from Go modules
	// (where kind's base image puts it); the wrapper finds it on PATH.
	RuncPath = "/usr/local/sbin/runc"
)

// containerdConfig is node n's /etc/containerd/config.toml: version 2
// for Debian's containerd 1.6 (node/containerd-config.toml), version 3
// for containerd 2 (node/containerd2-config.toml), with the preloaded
// pause image as the sandbox image.
func containerdConfig(n images.Node) ([]byte, error) {
	name := "node/containerd-config.toml"
	if n.Containerd != "" {
		name = "node/containerd2-config.toml"
	}
	b, err := fs.ReadFile(images.Files, name)
	if err != nil {
		return nil, err
	}
	const marker = "@SANDBOX_IMAGE@"
	if !strings.Contains(string(b), marker) {
		return nil, fmt.Errorf("images/%s has no %s", name, marker)
	}
	return []byte(strings.ReplaceAll(string(b), marker, ControlPlaneImages(n).Pause)), nil
}

// FlannelImage is the flannel image preloaded into the node.
const FlannelImage = "localhost/kubevirtci-flannel:" + images.Flannel + "-src"

// ControlPlane names the images kubeadm asks for at one Kubernetes version.
type ControlPlane struct {
	APIServer, ControllerManager, Scheduler, Proxy, Pause, Etcd, CoreDNS string
}

// All lists the images.
func (c ControlPlane) All() []string {
	return []string{c.APIServer, c.ControllerManager, c.Scheduler, c.Proxy, c.Pause, c.Etcd, c.CoreDNS}
}

// ControlPlaneImages are the images kubeadm asks for at node n's version,
// built here and preloaded into the node's containerd under these names.
func ControlPlaneImages(n images.Node) ControlPlane {
	r := n.ImageRegistry + "/"
	return ControlPlane{
		APIServer:         r + "kube-apiserver:" + n.Kubernetes,
		ControllerManager: r + "kube-controller-manager:" + n.Kubernetes,
		Scheduler:         r + "kube-scheduler:" + n.Kubernetes,
		Proxy:             r + "kube-proxy:" + n.Kubernetes,
		Pause:             r + "pause:" + n.Pause,
		Etcd:              r + "etcd:" + n.EtcdImageTag,
		CoreDNS:           r + "coredns/coredns:" + n.CoreDNS,
	}
}

// BuildNode builds the kind node image of Options.Node (tag
// Options.Node.Image() unless Options.Tag says otherwise) into the engine
// and returns its name. When the engine has the image built from the same
// inputs, it returns at once.
func BuildNode(ctx context.Context, opts Options) (string, error) {
	o, err := opts.complete()
	if err != nil {
		return "", err
	}
	tag := o.Tag
	if tag == "" {
		tag = o.Node.Image()
	}
	n := o.Node
	b, err := newBuilder(ctx, o)
	if err != nil {
		return "", err
	}
	defer b.close()

	var kindFiles string
	if err := o.Log.Run("Resolving the node image's inputs", func() error {
		kindFiles, err = b.kindBaseFiles(ctx)
		return err
	}); err != nil {
		return "", err
	}
	inputs, err := b.nodeInputs(kindFiles)
	if err != nil {
		return "", err
	}
	if !o.Force && o.imageInputs(ctx, tag) == inputs {
		o.Log.Infof(" • %s is up to date (inputs %s)", tag, inputs[:12])
		return tag, nil
	}

	bins := map[string]string{}
	for _, c := range nodeComponents(n) {
		c := c
		if err := o.Log.Run("Building "+c.Name, func() error {
			dir, err := b.build(ctx, c)
			bins[c.role()] = dir
			return err
		}); err != nil {
			return "", err
		}
	}

	var nodeRoot, slimRoot string
	nodeSpec := nodeRootfs(n)
	if err := o.Log.Run("Making the node's root file system (debootstrap "+images.DebianSuite+")", func() error {
		nodeRoot, err = b.rootfs(ctx, nodeSpec.rootfsSpec, nodeSpec.extra...)
		return err
	}); err != nil {
		return "", err
	}
	if err := o.Log.Run("Making the iptables base layer (debootstrap "+images.DebianSuite+")", func() error {
		slimRoot, err = b.rootfs(ctx, slimRootfs(), iptablesWrapperRecipe())
		return err
	}); err != nil {
		return "", err
	}

	var imgs []builtImage
	if err := o.Log.Run("Building the control-plane and flannel images", func() error {
		imgs, err = b.nodeImages(ctx, n, bins, slimRoot)
		return err
	}); err != nil {
		return "", err
	}

	rootfsTag := "localhost/kubevirtci-" + nodeSpec.Name + "-rootfs:" + strings.TrimPrefix(filepath.Base(nodeRoot), nodeSpec.Name+"-")
	if err := o.Log.Run("Importing the root file system into "+o.CRI, func() error {
		return b.importRootfs(ctx, nodeRoot, rootfsTag)
	}); err != nil {
		return "", err
	}

	filesTar := filepath.Join(b.work, "node-files.tar")
	if err := o.Log.Run("Writing kind's base files, Kubernetes and CNI binaries", func() error {
		entries, err := nodeFiles(n, kindFiles, bins)
		if err != nil {
			return err
		}
		if n.Containerd != "" {
			base, err := b.criBaseFromCtr(ctx, filepath.Join(bins["containerd"], "ctr"))
			if err != nil {
				return err
			}
			entries = append(entries, entry{Path: "/etc/containerd/cri-base.json", Data: base})
		}
		return writeEntriesFile(filesTar, entries)
	}); err != nil {
		return "", err
	}
	imagesTar := filepath.Join(b.work, "images.tar")
	if err := o.Log.Run("Writing the images tarball", func() error {
		return writeImages(imagesTar, imgs)
	}); err != nil {
		return "", err
	}
	old := o.imageID(ctx, tag)
	if err := o.Log.Run("Assembling "+tag+" (files, preloaded images, commit)", func() error {
		return b.assembleNode(ctx, n, rootfsTag, filesTar, imagesTar, refs(imgs), tag, inputs)
	}); err != nil {
		return "", err
	}
	o.removeReplaced(ctx, old, tag)
	return tag, nil
}

// kindBaseFiles returns kind's images/base/files directory from the
// module cache at the pinned version.
func (b *builder) kindBaseFiles(ctx context.Context) (string, error) {
	out, err := b.o.run(ctx, "go", "mod", "download", "-json", "sigs.k8s.io/kind@"+images.Kind)
	if err != nil {
		return "", err
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", fmt.Errorf("go mod download sigs.k8s.io/kind@%s: %w", images.Kind, err)
	}
	if m.Error != "" || m.Dir == "" {
		return "", fmt.Errorf("go mod download sigs.k8s.io/kind@%s: %s", images.Kind, m.Error)
	}
	dir := filepath.Join(m.Dir, "images", "base", "files")
	if _, err := os.Stat(filepath.Join(dir, "usr", "local", "bin", "entrypoint")); err != nil {
		return "", fmt.Errorf("kind %s has no base files in %s: %w", images.Kind, dir, err)
	}
	return dir, nil
}

// nodeInputs hashes everything the node image is made of.
func (b *builder) nodeInputs(kindFiles string) (string, error) {
	h := newHasher()
	h.add(recipe, "node", b.goVer, b.mirror(), versionsString(b.o.Node))
	h.add(nodeRootfs(b.o.Node).Packages...)
	h.add(images.SlimPackages...)
	if err := h.addFS(images.Files, ".", nil); err != nil {
		return "", err
	}
	for _, d := range []string{"images/build", "images/pause", "cmd/runc-capwrap", "internal/nodeimage"} {
		if err := h.addDir(filepath.Join(b.o.SourceDir, d), skipTests); err != nil {
			return "", err
		}
	}
	if err := h.addDir(kindFiles, nil); err != nil {
		return "", err
	}
	return h.hex(), nil
}

// versionsString lists the pinned versions of node n (part of every input hash).
func versionsString(n images.Node) string {
	return strings.Join([]string{
		n.Kubernetes, n.KubernetesStaging, n.KubeOpenAPI, n.Etcd, n.EtcdImageTag,
		n.CoreDNS, n.Pause, n.ImageRegistry, n.BuildModule, n.EtcdModule, n.CoreDNSModule, n.Containerd, n.Runc,
		images.Flannel, images.CNIPlugins, images.CNIFlannelPlugins,
		images.Kind, images.CRITools, images.Distribution, images.DebianSuite,
		n.KubernetesTags,
	}, ",")
}

// nodeRootfsSpec is a rootfsSpec with the extra inputs of its prepare step.
type nodeRootfsSpec struct {
	rootfsSpec
	extra []string
}

// nodeRootfs is node n's Debian tree, prepared the way kind's base image
// Dockerfile prepares its own. A node that runs Debian's containerd gets
// it (and runc) from the tree, which also gives cri-base.json; a node that
// runs containerd and runc built from Go modules gets neither package, and
// its cri-base.json comes from the built ctr (criBaseFromCtr).
func nodeRootfs(n images.Node) nodeRootfsSpec {
	if n.Containerd == "" {
		return nodeRootfsSpec{
			rootfsSpec: rootfsSpec{Name: "node", Packages: images.NodePackages, prepare: prepareNodeTree(true)},
			extra:      []string{criBaseRecipe},
		}
	}
	var pkgs []string
	for _, p := range images.NodePackages {
		if p != "containerd" && p != "runc" {
			pkgs = append(pkgs, p)
		}
	}
	return nodeRootfsSpec{rootfsSpec: rootfsSpec{Name: "node-containerd2", Packages: pkgs, prepare: prepareNodeTree(false)}}
}

// criBaseRecipe names the way cri-base.json is derived (part of the tree's key).
const criBaseRecipe = "cri-base: ctr oci spec + kind createContainer hook - rlimits"

// criBaseFromCtr derives cri-base.json from `ctr oci spec` of the built
// ctr (it prints containerd's default spec; no daemon is needed).
func (b *builder) criBaseFromCtr(ctx context.Context, ctr string) ([]byte, error) {
	spec, err := b.o.run(ctx, ctr, "oci", "spec")
	if err != nil {
		return nil, err
	}
	return criBaseSpec(spec)
}

// prepareNodeTree prepares the node's tree; withCRIBase writes
// cri-base.json from the tree's own ctr (Debian's containerd).
func prepareNodeTree(withCRIBase bool) func(ctx context.Context, b *builder, dir string) error {
	return func(ctx context.Context, b *builder, dir string) error {
		return prepareNodeTreeDir(ctx, b, dir, withCRIBase)
	}
}

func prepareNodeTreeDir(ctx context.Context, b *builder, dir string, withCRIBase bool) error {
	for _, g := range []string{
		"lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service",
		"lib/systemd/system/multi-user.target.wants/*",
		"etc/systemd/system/*.wants/*",
		"lib/systemd/system/local-fs.target.wants/*",
		"lib/systemd/system/sockets.target.wants/*udev*",
		"lib/systemd/system/sockets.target.wants/*initctl*",
		"lib/systemd/system/basic.target.wants/*",
		// Debian's containerd config; the image brings its own.
		"etc/containerd/config.toml",
	} {
		if err := removeGlob(dir, g); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "etc/systemd/journald.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString("ReadKMsg=no\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if _, err := os.Lstat(filepath.Join(dir, "sbin/init")); err != nil {
		return fmt.Errorf("the tree has no /sbin/init (is systemd-sysv installed?): %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "etc/containerd"), 0o755); err != nil {
		return err
	}
	if withCRIBase {
		spec, err := b.o.run(ctx, "chroot", dir, "ctr", "oci", "spec")
		if err != nil {
			return err
		}
		base, err := criBaseSpec(spec)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "etc/containerd/cri-base.json"), base, 0o644); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "etc/kubernetes/manifests"), 0o755); err != nil {
		return err
	}
	return trimTree(ctx, b, dir)
}

// criBaseSpec turns `ctr oci spec` output into containerd's base runtime
// spec the way kind's base image does: kind's createContainer hook
// (/kind/bin/mount-product-files.sh) appended, process.rlimits removed.
func criBaseSpec(spec []byte) ([]byte, error) {
	var s map[string]any
	if err := json.Unmarshal(spec, &s); err != nil {
		return nil, fmt.Errorf("ctr oci spec printed no JSON spec: %w", err)
	}
	if p, ok := s["process"].(map[string]any); ok {
		delete(p, "rlimits")
	} else {
		return nil, fmt.Errorf("ctr oci spec printed a spec without process")
	}
	hooks, _ := s["hooks"].(map[string]any)
	if hooks == nil {
		hooks = map[string]any{}
	}
	cc, _ := hooks["createContainer"].([]any)
	hooks["createContainer"] = append(cc, map[string]any{"path": "/kind/bin/mount-product-files.sh"})
	s["hooks"] = hooks
	return json.MarshalIndent(s, "", "    ")
}

// slimRootfs is the base layer of the images that run iptables (kube-proxy
// and flannel), with iptables-wrapper in front of iptables.
func slimRootfs() rootfsSpec {
	return rootfsSpec{Name: "slim", Packages: images.SlimPackages, prepare: prepareSlimTree}
}

func iptablesWrapperRecipe() string {
	b, _ := fs.ReadFile(images.Files, "node/iptables-wrapper")
	return string(b)
}

func prepareSlimTree(ctx context.Context, b *builder, dir string) error {
	w := filepath.Join(dir, "usr/sbin/iptables-wrapper")
	if err := os.WriteFile(w, []byte(iptablesWrapperRecipe()), 0o755); err != nil {
		return err
	}
	for _, fam := range []string{"iptables", "ip6tables"} {
		if _, err := b.o.run(ctx, "chroot", dir, "update-alternatives", "--install",
			"/usr/sbin/"+fam, fam, "/usr/sbin/iptables-wrapper", "100",
			"--slave", "/usr/sbin/"+fam+"-restore", fam+"-restore", "/usr/sbin/iptables-wrapper",
			"--slave", "/usr/sbin/"+fam+"-save", fam+"-save", "/usr/sbin/iptables-wrapper"); err != nil {
			return err
		}
		if _, err := b.o.run(ctx, "chroot", dir, "update-alternatives", "--set", fam, "/usr/sbin/iptables-wrapper"); err != nil {
			return err
		}
	}
	return trimTree(ctx, b, dir)
}

// nodeImages builds the images preloaded into the node.
func (b *builder) nodeImages(ctx context.Context, n images.Node, bins map[string]string, slimRoot string) ([]builtImage, error) {
	k8s := bins["kubernetes"]
	// What kubeadm asks for must be what is built.
	out, err := b.o.run(ctx, filepath.Join(k8s, "kubeadm"), "config", "images", "list", "--kubernetes-version", n.Kubernetes)
	if err != nil {
		return nil, err
	}
	if err := checkKubeadmImages(n, strings.Fields(string(out))); err != nil {
		return nil, err
	}

	base, err := b.layerFromEntries("static-base", staticBase())
	if err != nil {
		return nil, err
	}
	slim, err := b.layerFromTree("slim", slimRoot)
	if err != nil {
		return nil, err
	}
	binLayer := func(name, src, dst string) (v1.Layer, error) {
		return b.layerFromEntries(name, []entry{{Path: dst, Src: src, Mode: 0o755}})
	}
	cp := ControlPlaneImages(n)
	type spec struct {
		ref, src, dst string
		base          v1.Layer
		cfg           v1.Config
	}
	specs := []spec{
		{cp.APIServer, filepath.Join(k8s, "kube-apiserver"), "/usr/local/bin/kube-apiserver", base, v1.Config{Entrypoint: []string{"/usr/local/bin/kube-apiserver"}}},
		{cp.ControllerManager, filepath.Join(k8s, "kube-controller-manager"), "/usr/local/bin/kube-controller-manager", base, v1.Config{Entrypoint: []string{"/usr/local/bin/kube-controller-manager"}}},
		{cp.Scheduler, filepath.Join(k8s, "kube-scheduler"), "/usr/local/bin/kube-scheduler", base, v1.Config{Entrypoint: []string{"/usr/local/bin/kube-scheduler"}}},
		{cp.Proxy, filepath.Join(k8s, "kube-proxy"), "/usr/local/bin/kube-proxy", slim, v1.Config{Entrypoint: []string{"/usr/local/bin/kube-proxy"}}},
		{cp.Etcd, filepath.Join(bins["etcd"], "server"), "/usr/local/bin/etcd", base, v1.Config{Cmd: []string{"/usr/local/bin/etcd"}}},
		{cp.CoreDNS, filepath.Join(bins["coredns"], "coredns"), "/coredns", base, v1.Config{Entrypoint: []string{"/coredns"}, ExposedPorts: map[string]struct{}{"53/tcp": {}, "53/udp": {}}}},
		{cp.Pause, filepath.Join(bins["tools"], "pause"), "/pause", base, v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}},
		{FlannelImage, filepath.Join(bins["flannel"], "flannel"), "/opt/bin/flanneld", slim, v1.Config{Entrypoint: []string{"/opt/bin/flanneld"}}},
	}
	var imgs []builtImage
	for i, s := range specs {
		l, err := binLayer(fmt.Sprint(i), s.src, s.dst)
		if err != nil {
			return nil, err
		}
		s.cfg.Labels = map[string]string{"io.kubevirtci.built-from": "source"}
		img, err := ociImage([]v1.Layer{s.base, l}, s.cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.ref, err)
		}
		imgs = append(imgs, builtImage{Ref: s.ref, Image: img})
	}
	return imgs, nil
}

// checkKubeadmImages checks that every image kubeadm asks for at node n's
// version is built.
func checkKubeadmImages(n images.Node, wanted []string) error {
	built := map[string]bool{}
	for _, r := range ControlPlaneImages(n).All() {
		built[r] = true
	}
	if len(wanted) == 0 {
		return fmt.Errorf("kubeadm config images list printed no image")
	}
	var missing []string
	for _, w := range wanted {
		if !built[w] {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("kubeadm %s asks for images this build does not make: %s (fix images/versions.go)", n.Kubernetes, strings.Join(missing, ", "))
	}
	return nil
}

// importRootfs imports the tree as an image, unless the engine has it.
func (b *builder) importRootfs(ctx context.Context, root, tag string) error {
	key := filepath.Base(root)
	if b.o.imageInputs(ctx, tag) == key {
		b.o.Log.Debugf("%s: already in the engine", tag)
		return nil
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTree(pw, root)) }()
	old := b.o.imageID(ctx, tag)
	_, err := b.o.cri(ctx, pr, "import",
		"--change", "ENV container=docker",
		"--change", "LABEL "+InputsLabel+"="+key,
		"--change", `ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]`,
		"-", tag)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return err
	}
	b.o.removeReplaced(ctx, old, tag)
	// Trees of earlier inputs: their images are no longer needed.
	repo, _, _ := strings.Cut(tag, ":")
	out, err := b.o.cri(ctx, nil, "images", "--format", "{{ .Repository }}:{{ .Tag }}", repo)
	if err == nil {
		for _, ref := range strings.Fields(string(out)) {
			if ref != tag && strings.HasPrefix(ref, repo+":") {
				if _, err := b.o.cri(ctx, nil, "rmi", ref); err != nil {
					b.o.Log.Debugf("keeping %s: %v", ref, err)
				}
			}
		}
	}
	return nil
}

// nodeFiles are the files node n's image adds to the Debian tree.
func nodeFiles(n images.Node, kindFiles string, bins map[string]string) ([]entry, error) {
	var es []entry
	// kind's base files, but our own containerd config and no
	// fuse-overlayfs snapshotter (rootless kind only; not built here).
	err := filepath.WalkDir(kindFiles, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(kindFiles, p)
		if err != nil {
			return err
		}
		rel = "/" + filepath.ToSlash(rel)
		switch rel {
		case "/etc/containerd/config.toml", "/etc/systemd/system/containerd-fuse-overlayfs.service":
			return nil
		case "/LICENSES/README.txt":
			rel = "/LICENSES/kind-README.txt"
		}
		mode := int64(0o644)
		if strings.HasPrefix(rel, "/usr/local/bin/") || strings.HasPrefix(rel, "/kind/bin/") {
			mode = 0o755
		}
		es = append(es, entry{Path: rel, Src: p, Mode: mode})
		return nil
	})
	if err != nil {
		return nil, err
	}
	cfg, err := containerdConfig(n)
	if err != nil {
		return nil, err
	}
	cni, err := fs.ReadFile(images.Files, "node/default-cni.yaml")
	if err != nil {
		return nil, err
	}
	storage, err := fs.ReadFile(images.Files, "node/default-storage.yaml")
	if err != nil {
		return nil, err
	}
	k8s := bins["kubernetes"]
	es = append(es,
		entry{Path: "/etc/containerd/config.toml", Data: cfg},
		entry{Path: CertsDir, Dir: true},
		entry{Path: "/kind/version", Data: []byte(n.Kubernetes)},
		entry{Path: "/kind/manifests/default-cni.yaml", Data: []byte(strings.ReplaceAll(string(cni), "@FLANNEL_IMAGE@", FlannelImage))},
		entry{Path: "/kind/manifests/default-storage.yaml", Data: storage},
		entry{Path: "/usr/bin/kubelet", Src: filepath.Join(k8s, "kubelet"), Mode: 0o755},
		entry{Path: "/usr/bin/kubeadm", Src: filepath.Join(k8s, "kubeadm"), Mode: 0o755},
		entry{Path: KubectlPath, Src: filepath.Join(k8s, "kubectl"), Mode: 0o755},
		entry{Path: "/usr/local/bin/crictl", Src: filepath.Join(bins["crictl"], "crictl"), Mode: 0o755},
		entry{Path: WrapperPath, Src: filepath.Join(bins["tools"], "runc-capwrap"), Mode: 0o755},
		// systemctl enable kubelet containerd undo-mount-hacks; systemctl mask systemd-binfmt.
		entry{Path: "/etc/systemd/system/multi-user.target.wants/kubelet.service", Linkname: "/etc/systemd/system/kubelet.service"},
		entry{Path: "/etc/systemd/system/multi-user.target.wants/containerd.service", Linkname: "/etc/systemd/system/containerd.service"},
		entry{Path: "/etc/systemd/system/multi-user.target.wants/undo-mount-hacks.service", Linkname: "/etc/systemd/system/undo-mount-hacks.service"},
		entry{Path: "/etc/systemd/system/systemd-binfmt.service", Linkname: "/dev/null"},
		entry{Path: "/etc/kubernetes/manifests", Dir: true},
		entry{Path: "/opt/cni/bin", Dir: true},
	)
	if n.Containerd == "" {
		// kind's containerd unit starts /usr/local/bin/containerd; Debian installs /usr/bin/containerd.
		es = append(es, entry{Path: "/usr/local/bin/containerd", Linkname: "/usr/bin/containerd"})
	} else {
		// Where kind's base image puts them: its unit starts
		// /usr/local/bin/containerd, which finds the shim on its PATH,
		// and the shim finds runc (here the wrapper's real runc) on PATH.
		for _, f := range []string{"containerd", "ctr", "containerd-shim-runc-v2"} {
			es = append(es, entry{Path: "/usr/local/bin/" + f, Src: filepath.Join(bins["containerd"], f), Mode: 0o755})
		}
		es = append(es, entry{Path: RuncPath, Src: filepath.Join(bins["runc"], "runc"), Mode: 0o755})
	}
	for _, dir := range []string{bins["cni-plugins"], bins["cni-flannel"]} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			es = append(es, entry{Path: "/opt/cni/bin/" + e.Name(), Src: filepath.Join(dir, e.Name()), Mode: 0o755})
		}
	}
	for _, e := range es {
		if err := checkNodePath(e.Path); err != nil {
			return nil, err
		}
	}
	return es, nil
}

// checkNodePath refuses paths through /bin, /sbin and /lib: they are
// symbolic links into /usr in the node, which a directory entry in a tar
// would replace.
func checkNodePath(p string) error {
	top, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	switch top {
	case "bin", "sbin", "lib", "lib64", "lib32":
		return fmt.Errorf("node file %s goes through /%s, a link into /usr in the node: use /usr/%s", p, top, strings.TrimPrefix(p, "/"))
	}
	return nil
}

// assembleNode starts a container of the root file system, copies the
// files in, preloads the images into its containerd, and commits the result.
// The image has no STOPSIGNAL (kind's base image has SIGRTMIN+3): docker
// 20.10 accepts no STOPSIGNAL change on commit or import, and kind removes
// its nodes with `rm -f` anyway.
func (b *builder) assembleNode(ctx context.Context, n images.Node, rootfsTag, filesTar, imagesTar string, wantRefs []string, tag, inputs string) error {
	o := &b.o
	name := "kubevirtci-node-build-" + inputs[:12]
	_, _ = o.cri(ctx, nil, "rm", "-f", name)
	if _, err := o.cri(ctx, nil, "run", "-d", "--privileged", "--name", name, "--entrypoint", "sleep", rootfsTag, "infinity"); err != nil {
		return err
	}
	defer func() {
		// A fresh context: the build's may be cancelled already.
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = o.cri(c, nil, "rm", "-f", name)
	}()
	f, err := os.Open(filesTar)
	if err != nil {
		return err
	}
	_, err = o.cri(ctx, f, "cp", "-", name+":/")
	f.Close()
	if err != nil {
		return err
	}
	if _, err := o.cri(ctx, nil, "exec", "-d", name, "containerd"); err != nil {
		return err
	}
	if err := poll(ctx, 60*time.Second, func() bool {
		_, err := o.cri(ctx, nil, "exec", name, "ctr", "version")
		return err == nil
	}); err != nil {
		out, _ := o.cri(ctx, nil, "exec", name, "ps", "-ef")
		return fmt.Errorf("containerd in the build container did not answer: %w\n%s", err, out)
	}
	f, err = os.Open(imagesTar)
	if err != nil {
		return err
	}
	_, err = o.cri(ctx, f, "exec", "-i", name, "ctr", "--namespace=k8s.io", "images", "import",
		"--label=io.cri-containerd.pinned=pinned", "--all-platforms", "--no-unpack", "--digests", "-")
	f.Close()
	if err != nil {
		return err
	}
	out, err := o.cri(ctx, nil, "exec", name, "ctr", "--namespace=k8s.io", "images", "list", "-q")
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		have[l] = true
	}
	for _, r := range wantRefs {
		if !have[r] {
			return fmt.Errorf("image %s is missing from the node's containerd after the import; it has: %s", r, strings.Join(strings.Fields(string(out)), " "))
		}
	}
	if _, err := o.cri(ctx, nil, "exec", name, "pkill", "-x", "containerd"); err != nil {
		return err
	}
	if err := poll(ctx, 60*time.Second, func() bool {
		_, err := o.cri(ctx, nil, "exec", name, "pgrep", "-x", "containerd")
		return err != nil
	}); err != nil {
		return fmt.Errorf("containerd in the build container did not stop: %w", err)
	}
	_, err = o.cri(ctx, nil, "commit",
		"--change", `ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]`,
		"--change", `CMD []`,
		"--change", "ENV container=docker",
		"--change", "LABEL "+InputsLabel+"="+inputs,
		"--change", "LABEL io.kubevirtci.kubernetes="+n.Kubernetes,
		name, tag)
	return err
}

// poll calls done every 250 ms until it returns true, ctx ends or timeout passes.
func poll(ctx context.Context, timeout time.Duration, done func() bool) error {
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(context.Context) (bool, error) { return done(), nil })
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("gave up after %s", timeout)
	}
	return err
}
