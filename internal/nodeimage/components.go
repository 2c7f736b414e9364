package nodeimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubevirt/kubevirtci-go/images"
)

// EnvUpstreamDir is the setting that names the folder holding the
// components' source archives (<project>-<tag>.tar.gz, UpstreamSource.Archive).
const EnvUpstreamDir = "KUBEVIRTCI_UPSTREAM_DIR"

// DefaultUpstreamDir is where the archives are looked for when
// KUBEVIRTCI_UPSTREAM_DIR is not set, relative to the checkout: a
// shared/upstream folder beside it (the layout a team's CI can give every
// clone).
const DefaultUpstreamDir = "../shared/upstream"

// components is the set the options build: Options.Components, or
// images.Components122 when it is zero.
func (o *Options) components() images.Components {
	if o.Components == (images.Components{}) {
		return images.Components122
	}
	return o.Components
}

// ComponentImages are the names of the images BuildComponents makes for
// the set c, in the order of c.Sources(): multus, sriov-cni, the device
// plugin and, when the set has one, network-resources-injector.
func ComponentImages(c images.Components) []string {
	var refs []string
	for _, s := range c.Sources() {
		refs = append(refs, s.Image())
	}
	return refs
}

// upstreamDir is the folder of the source archives: Options.UpstreamDir,
// else KUBEVIRTCI_UPSTREAM_DIR, else DefaultUpstreamDir beside the checkout.
func (o *Options) upstreamDir() string {
	d := o.UpstreamDir
	if d == "" {
		d = o.getenv(EnvUpstreamDir)
	}
	if d == "" {
		d = DefaultUpstreamDir
	}
	if !filepath.IsAbs(d) {
		d = filepath.Join(o.SourceDir, d)
	}
	return filepath.Clean(d)
}

// ArchiveError is a source archive that is missing or is not the pinned one.
type ArchiveError struct {
	Path    string
	Source  images.UpstreamSource
	Got     string // the archive's sha256; "" when it could not be read
	ReadErr error
}

func (e *ArchiveError) Error() string {
	s := e.Source
	where := fmt.Sprintf("%s=%s", EnvUpstreamDir, filepath.Dir(e.Path))
	if e.ReadErr != nil {
		return fmt.Sprintf("source archive of %s %s: %v\n  %s should be a folder holding %s (`git archive --prefix=%s-%s/ %s | gzip` of github.com/k8snetworkplumbingwg/%s, sha256 %s); set %s to the folder that has it",
			s.Project, s.Tag, e.ReadErr, where, s.Archive(), s.Project, s.Tag, s.Tag, s.Project, s.SHA256, EnvUpstreamDir)
	}
	return fmt.Sprintf("source archive %s has sha256 %s, want %s (%s %s at commit %s)\n  replace it with the pinned archive, or set %s to a folder that holds it",
		e.Path, e.Got, s.SHA256, s.Project, s.Tag, s.Commit, EnvUpstreamDir)
}

func (e *ArchiveError) Unwrap() error { return e.ReadErr }

// checkArchive returns the path of a component's archive in dir, after
// checking its sha256.
func checkArchive(dir string, s images.UpstreamSource) (string, error) {
	p := filepath.Join(dir, s.Archive())
	f, err := os.Open(p)
	if err != nil {
		return "", &ArchiveError{Path: p, Source: s, ReadErr: err}
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", &ArchiveError{Path: p, Source: s, ReadErr: err}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != s.SHA256 {
		return "", &ArchiveError{Path: p, Source: s, Got: got}
	}
	return p, nil
}

// CheckArchives checks that every archive of the set c is in dir with its
// pinned sha256, reports every one that is not, and returns their paths by
// project.
func CheckArchives(dir string, c images.Components) (map[string]string, error) {
	paths := map[string]string{}
	var errs []error
	for _, s := range c.Sources() {
		p, err := checkArchive(dir, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		paths[s.Project] = p
	}
	return paths, errors.Join(errs...)
}

// The projects the component builds know, by repository name.
const (
	projectMultus       = "multus-cni"
	projectSRIOVCNI     = "sriov-cni"
	projectDevicePlugin = "sriov-network-device-plugin"
	projectInjector     = "network-resources-injector"
)

// goFlags are the `go build` flags of every pinned source, as the build
// script of its tag has them (multus: hack/build-go.sh; sriov-cni and the
// device plugin: Makefile; the injector: scripts/build.sh). Sources from a
// vendor folder build with -mod=vendor; the others take their modules from
// the module proxy (their go.sum). A source missing here is an error that
// names it.
var goFlags = map[string][]string{
	"multus-cni v3.8":                    {"-mod=vendor", "-tags", "no_openssl"},
	"sriov-cni v2.7.0":                   nil,
	"sriov-cni v2.9.0":                   {"-tags", "no_openssl"},
	"sriov-network-device-plugin v3.4.0": {"-mod=vendor", "-tags", "no_openssl"},
	"sriov-network-device-plugin v3.9.0": {"-tags", "no_openssl"},
	"network-resources-injector v1.9.0":  {"-tags", "no_openssl"},
}

// multusPkg holds multus's version variables.
const multusPkg = "gopkg.in/k8snetworkplumbingwg/multus-cni.v3/pkg/multus"

// componentBuilds are the Go builds of the set's components, unpacked in
// srcs (by project). Each build is named <project>-<tag>, so that the
// cached binaries of two tags of a project (sriov-cni v2.7.0 and v2.9.0)
// live side by side.
func componentBuilds(set images.Components, srcs map[string]string) ([]component, error) {
	var out []component
	var errs []error
	for _, s := range set.Sources() {
		flags, ok := goFlags[s.Project+" "+s.Tag]
		if !ok {
			errs = append(errs, fmt.Errorf("no build recipe for %s %s: add the `go build` flags of its tag's build script to goFlags (internal/nodeimage/components.go)", s.Project, s.Tag))
			continue
		}
		c := component{Name: s.Project + "-" + s.Tag, Dir: srcs[s.Project], SourceKey: s.SHA256, Flags: flags}
		switch s.Project {
		case projectMultus:
			c.Packages, c.Output, c.Toolchain = []string{"./cmd"}, "multus", images.MultusGoToolchain
			// hack/build-go.sh sets main.version, but the variables live
			// in pkg/multus: set those, so that `multus -version` tells.
			c.Ldflags = "-X " + multusPkg + ".version=" + s.Tag + " -X " + multusPkg + ".commit=" + s.Commit
		case projectSRIOVCNI:
			c.Packages, c.Output = []string{"./cmd/sriov"}, "sriov"
		case projectDevicePlugin:
			c.Packages, c.Output = []string{"./cmd/sriovdp"}, "sriovdp"
		case projectInjector:
			// The webhook, and the installer that creates its TLS secret,
			// Service and MutatingWebhookConfiguration.
			c.Packages = []string{"./cmd/webhook", "./cmd/installer"}
		default:
			errs = append(errs, fmt.Errorf("%s %s: not a component this build knows (%s, %s, %s, %s)", s.Project, s.Tag, projectMultus, projectSRIOVCNI, projectDevicePlugin, projectInjector))
			continue
		}
		out = append(out, c)
	}
	return out, errors.Join(errs...)
}

// BuildComponents builds the images of the component set opts.Components
// (images.Components122 when zero) from their source archives (see
// KUBEVIRTCI_UPSTREAM_DIR) into the engine and returns their names
// (ComponentImages). When the engine has every one of them built from the
// same inputs, it returns at once.
//
// Each image has the layout of the upstream image of its tag, so that the
// upstream manifests run it unchanged: multus's binary at
// /usr/src/multus-cni/bin/multus and its bash /entrypoint.sh (which runs
// `python`); /usr/bin/sriov and /entrypoint.sh for sriov-cni;
// /usr/bin/sriovdp, /entrypoint.sh and pci.ids (/usr/share/misc and
// /usr/share/hwdata) for the device plugin. These three share one base
// layer, Debian minbase with images.ComponentPackages, instead of
// upstream's CentOS and Alpine bases. The device plugin image lacks
// upstream's ddptool (Intel DDP profiles; a C program the provider's
// selectors do not use). network-resources-injector's image holds, like
// upstream's, /usr/bin/webhook and /usr/bin/installer, runs `webhook` as
// user 1001, and has no shell: its binaries are static.
func BuildComponents(ctx context.Context, opts Options) ([]string, error) {
	b, set, dir, archives, err := componentBuilder(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer b.close()
	o := &b.o

	refs := ComponentImages(set)
	inputs := map[string]string{}
	upToDate := !o.Force
	for _, s := range set.Sources() {
		in, err := b.componentInputs(s)
		if err != nil {
			return nil, err
		}
		inputs[s.Project] = in
		upToDate = upToDate && o.imageInputs(ctx, s.Image()) == in
	}
	if upToDate {
		o.Log.Infof(" • %s are up to date", strings.Join(refs, ", "))
		return refs, nil
	}

	srcs, bins, err := b.componentBinaries(ctx, set, dir, archives)
	if err != nil {
		return nil, err
	}
	var baseRoot string
	if err := o.Log.Run("Making the components' base layer (debootstrap "+images.DebianSuite+")", func() error {
		baseRoot, err = b.rootfs(ctx, componentsRootfs(), componentsUnneeded...)
		return err
	}); err != nil {
		return nil, err
	}
	tarFile := filepath.Join(b.work, "components.tar")
	if err := o.Log.Run("Writing the component images", func() error {
		imgs, err := b.componentImages(set, srcs, bins, baseRoot, inputs)
		if err != nil {
			return err
		}
		return writeImages(tarFile, imgs)
	}); err != nil {
		return nil, err
	}
	old := map[string]string{}
	for _, r := range refs {
		old[r] = o.imageID(ctx, r)
	}
	if err := o.Log.Run("Loading the component images into "+o.CRI, func() error {
		_, err := o.cri(ctx, nil, "load", "-i", tarFile)
		return err
	}); err != nil {
		return nil, err
	}
	for _, r := range refs {
		o.removeReplaced(ctx, old[r], r)
	}
	return refs, nil
}

// ComponentBinaries builds the binaries of the component set
// opts.Components (images.Components122 when zero) from their source
// archives (checked first; cached like the images' builds) and returns
// their paths by file name: "multus", "sriov", "sriovdp", and for a set
// with the injector "webhook" and "installer". The SR-IOV VM suite runs
// them outside any image.
func ComponentBinaries(ctx context.Context, opts Options) (map[string]string, error) {
	b, set, dir, archives, err := componentBuilder(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer b.close()
	srcs, bins, err := b.componentBinaries(ctx, set, dir, archives)
	if err != nil {
		return nil, err
	}
	builds, err := componentBuilds(set, srcs)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, s := range set.Sources() {
		c := builds[i]
		for _, p := range c.Packages {
			out[c.binary(p)] = filepath.Join(bins[s.Project], c.binary(p))
		}
	}
	return out, nil
}

// componentBuilder completes the options and checks the set's source
// archives (before anything runs), then starts a build. It returns the set,
// the archives' folder and their paths by project.
func componentBuilder(ctx context.Context, opts Options) (*builder, images.Components, string, map[string]string, error) {
	o, err := opts.complete()
	if err != nil {
		return nil, images.Components{}, "", nil, err
	}
	set := o.components()
	if _, err := componentBuilds(set, nil); err != nil {
		return nil, set, "", nil, err
	}
	dir := o.upstreamDir()
	archives, err := CheckArchives(dir, set)
	if err != nil {
		return nil, set, "", nil, err
	}
	b, err := newBuilder(ctx, o)
	if err != nil {
		return nil, set, "", nil, err
	}
	return b, set, dir, archives, nil
}

// componentBinaries unpacks the checked archives and builds the set's
// components; it returns their source folders and their binaries' folders,
// by project.
func (b *builder) componentBinaries(ctx context.Context, set images.Components, dir string, archives map[string]string) (srcs, bins map[string]string, err error) {
	o := &b.o
	srcs, bins = map[string]string{}, map[string]string{}
	if err := o.Log.Run("Unpacking the source archives from "+dir, func() error {
		for _, s := range set.Sources() {
			d, err := b.unpack(ctx, s, archives[s.Project])
			if err != nil {
				return err
			}
			srcs[s.Project] = d
		}
		return nil
	}); err != nil {
		return nil, nil, err
	}
	builds, err := componentBuilds(set, srcs)
	if err != nil {
		return nil, nil, err
	}
	for i, s := range set.Sources() {
		c := builds[i]
		if err := o.Log.Run("Building "+s.Project+" "+s.Tag, func() error {
			d, err := b.build(ctx, c)
			bins[s.Project] = d
			return err
		}); err != nil {
			return nil, nil, err
		}
	}
	return srcs, bins, nil
}

// componentInputs hashes everything the image of one component is made
// of: its source, the Go that builds it, the base layer's packages and
// mirror, and this package's code. Each image has its own, so that an
// image two sets share (multus v3.8) is up to date for both.
func (b *builder) componentInputs(s images.UpstreamSource) (string, error) {
	h := newHasher()
	h.add(recipe, "component", s.Project, s.Tag, s.Commit, s.SHA256, b.goVer, images.MultusGoToolchain,
		b.mirror(), images.DebianSuite)
	h.add(images.ComponentPackages...)
	if err := h.addDir(filepath.Join(b.o.SourceDir, "internal/nodeimage"), skipTests); err != nil {
		return "", err
	}
	return h.hex(), nil
}

// unpack unpacks a checked archive into the cache (once per sha256) and
// returns the project's folder in it.
func (b *builder) unpack(ctx context.Context, s images.UpstreamSource, archive string) (string, error) {
	// upstream-<project>-<tag>-<sha256 prefix>: the tag keeps two tags of a
	// project from pruning each other, and the name is not the pattern
	// (<project>-<tag>-<key>) of the build outputs that b.build prunes
	// under src/.
	prefix := "upstream-" + s.Project + "-" + s.Tag + "-"
	base := filepath.Join(b.o.CacheDir, "src", prefix+s.SHA256[:16])
	dir := filepath.Join(base, s.Project+"-"+s.Tag)
	if _, err := os.Stat(base + ".complete"); err == nil {
		b.o.Log.Debugf("%s: reusing %s", s.Project, dir)
		return dir, nil
	}
	if err := os.RemoveAll(base); err != nil {
		return "", err
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	if _, err := b.o.run(ctx, "tar", "-xzf", archive, "-C", base, "--no-same-owner"); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("%s does not unpack to %s-%s/ with a go.mod: %w", archive, s.Project, s.Tag, err)
	}
	if err := os.WriteFile(base+".complete", nil, 0o644); err != nil {
		return "", err
	}
	pruneSiblings(filepath.Dir(base), prefix, filepath.Base(base))
	return dir, nil
}

// componentsRootfs is the shared base layer of multus, sriov-cni and the
// device plugin.
func componentsRootfs() rootfsSpec {
	return rootfsSpec{Name: "components", Packages: images.ComponentPackages, prepare: prepareComponentsTree}
}

// componentsUnneeded are the parts of the components' Debian tree that
// their entrypoints never use: the package manager's state, perl (only
// package scripts run it), glibc's iconv modules, time zones, and the
// parts of Python's library beyond what multus's entrypoint imports (json
// and sys, and what Python's start-up needs). Every file in the layer is
// written into each node at cluster-up and deleted at cluster-down (the
// layer is unpacked there), so these 3,500 files (of 5,500) cost time
// twice; checkComponentsTree proves the entrypoints' tools still run.
var componentsUnneeded = []string{
	"var/lib/dpkg/info", "var/cache/debconf", "usr/lib/apt", "usr/share/zoneinfo",
	"usr/lib/x86_64-linux-gnu/perl-base", "usr/share/perl5", "usr/bin/perl", "usr/bin/perl5.36.0",
	"usr/lib/x86_64-linux-gnu/gconv", "usr/share/common-licenses", "usr/share/bash-completion",
	"usr/share/lintian",
	"usr/lib/python3.11/test", "usr/lib/python3.11/pydoc_data", "usr/lib/python3.11/unittest",
	"usr/lib/python3.11/asyncio", "usr/lib/python3.11/email", "usr/lib/python3.11/xmlrpc",
	"usr/lib/python3.11/wsgiref", "usr/lib/python3.11/sqlite3", "usr/lib/python3.11/dbm",
	"usr/lib/python3.11/curses", "usr/lib/python3.11/venv", "usr/lib/python3.11/multiprocessing",
	"usr/lib/python3.11/distutils", "usr/lib/python3.11/html", "usr/lib/python3.11/http",
	"usr/lib/python3.11/xml", "usr/lib/python3.11/urllib", "usr/lib/python3.11/concurrent",
	"usr/lib/python3.11/zoneinfo", "usr/lib/python3.11/tomllib", "usr/lib/python3.11/ctypes",
	"usr/lib/python3.11/lib2to3", "usr/lib/python3.11/ensurepip", "usr/lib/python3.11/idlelib",
	"usr/lib/python3.11/turtledemo", "usr/lib/python3.11/tkinter",
}

// componentsTreeChecks are commands each run in the trimmed tree (chroot):
// the tools the components' entrypoints call.
var componentsTreeChecks = [][]string{
	{"python", "-c", `import json,sys; assert json.loads('{"name": "n"}')["name"] == "n"`},
	{"bash", "-c", "set -e; d=$(mktemp -d); echo x | awk '{print $1}' | grep -q x; cat /etc/hostname >/dev/null 2>&1 || true; " +
		"mkdir -p $d/a; touch $d/a/f; cp $d/a/f $d/g; mv $d/g $d/h; chmod 644 $d/h; ls $d | head -1 | tr a-z A-Z >/dev/null; date >/dev/null; sleep 0; rm -rf $d"},
	{"sh", "-c", "printf '%s' ok | awk '{print}' >/dev/null"},
}

func prepareComponentsTree(ctx context.Context, b *builder, dir string) error {
	// Alpine's hwdata-pci puts pci.ids in /usr/share/hwdata; Debian's
	// pci.ids package in /usr/share/misc. The device plugin reads either.
	if _, err := os.Stat(filepath.Join(dir, "usr/share/misc/pci.ids")); err != nil {
		return fmt.Errorf("the pci.ids package left no /usr/share/misc/pci.ids: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "usr/share/hwdata"), 0o755); err != nil {
		return err
	}
	if err := os.Symlink("../misc/pci.ids", filepath.Join(dir, "usr/share/hwdata/pci.ids")); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if _, err := os.Lstat(filepath.Join(dir, "usr/bin/python")); err != nil {
		return fmt.Errorf("the tree has no /usr/bin/python (multus's entrypoint runs it; is python-is-python3 installed?): %w", err)
	}
	if err := trimTree(ctx, b, dir); err != nil {
		return err
	}
	for _, p := range componentsUnneeded {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			return err
		}
	}
	return checkComponentsTree(ctx, b, dir)
}

// checkComponentsTree runs the entrypoints' tools in the trimmed tree.
func checkComponentsTree(ctx context.Context, b *builder, dir string) error {
	for _, c := range componentsTreeChecks {
		if _, err := b.o.run(ctx, "chroot", append([]string{dir}, c...)...); err != nil {
			return fmt.Errorf("the components' trimmed tree lacks what their entrypoints run: %w", err)
		}
	}
	return nil
}

// componentLayout is a component image's own files and runtime config,
// after its tag's Dockerfile. debian says whether it sits on the
// components' Debian base layer (its entrypoint is a shell script) or on
// the few files static binaries need.
func componentLayout(s images.UpstreamSource, src, bin string) (entries []entry, cfg v1.Config, debian bool) {
	entrypoint := entry{Path: "/entrypoint.sh", Src: filepath.Join(src, "images", "entrypoint.sh"), Mode: 0o755}
	script := v1.Config{Entrypoint: []string{"/entrypoint.sh"}, WorkingDir: "/"}
	switch s.Project {
	case projectMultus:
		return []entry{entrypoint, {Path: "/usr/src/multus-cni/bin/multus", Src: filepath.Join(bin, "multus"), Mode: 0o755}}, script, true
	case projectSRIOVCNI:
		return []entry{entrypoint, {Path: "/usr/bin/sriov", Src: filepath.Join(bin, "sriov"), Mode: 0o755}}, script, true
	case projectDevicePlugin:
		return []entry{entrypoint, {Path: "/usr/bin/sriovdp", Src: filepath.Join(bin, "sriovdp"), Mode: 0o755}}, script, true
	case projectInjector:
		// Dockerfile: USER 1001, both binaries in /usr/bin, CMD ["webhook"];
		// the manifests name the command (webhook or installer).
		return append(staticBase(),
				entry{Path: "/usr/bin/webhook", Src: filepath.Join(bin, "webhook"), Mode: 0o755},
				entry{Path: "/usr/bin/installer", Src: filepath.Join(bin, "installer"), Mode: 0o755}),
			v1.Config{Cmd: []string{"webhook"}, User: "1001", WorkingDir: "/"}, false
	}
	return nil, v1.Config{}, false
}

// componentImages assembles the set's images: the ones with a shell
// entrypoint on the shared Debian base layer, the injector on its own.
func (b *builder) componentImages(set images.Components, srcs, bins map[string]string, baseRoot string, inputs map[string]string) ([]builtImage, error) {
	base, err := b.layerFromTree("components-base", baseRoot)
	if err != nil {
		return nil, err
	}
	var imgs []builtImage
	for _, s := range set.Sources() {
		entries, cfg, debian := componentLayout(s, srcs[s.Project], bins[s.Project])
		if entries == nil {
			return nil, fmt.Errorf("%s: no image layout for %s", s.Image(), s.Project)
		}
		for _, e := range entries {
			if e.Src == "" {
				continue
			}
			if _, err := os.Stat(e.Src); err != nil {
				return nil, fmt.Errorf("%s image: %w", s.Project, err)
			}
		}
		l, err := b.layerFromEntries(s.Project+"-"+s.Tag, entries)
		if err != nil {
			return nil, err
		}
		layers := []v1.Layer{l}
		if debian {
			layers = []v1.Layer{base, l}
		}
		cfg.Labels = map[string]string{
			InputsLabel:                         inputs[s.Project],
			"io.kubevirtci.built-from":          "source",
			"org.opencontainers.image.source":   "https://github.com/k8snetworkplumbingwg/" + s.Project,
			"org.opencontainers.image.version":  s.Tag,
			"org.opencontainers.image.revision": s.Commit,
		}
		img, err := ociImage(layers, cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Image(), err)
		}
		imgs = append(imgs, builtImage{Ref: s.Image(), Image: img})
	}
	return imgs, nil
}
