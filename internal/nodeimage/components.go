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
// components' source archives (images.Multus.Archive() and the others).
const EnvUpstreamDir = "KUBEVIRTCI_UPSTREAM_DIR"

// DefaultUpstreamDir is where the archives are looked for when
// KUBEVIRTCI_UPSTREAM_DIR is not set, relative to the checkout: a
// shared/upstream folder beside it (the layout a team's CI can give every
// clone).
const DefaultUpstreamDir = "../shared/upstream"

// ComponentSources are the three components the provider deploys, in the
// order they are built.
var ComponentSources = []images.UpstreamSource{images.Multus, images.SRIOVCNI, images.SRIOVDevicePlugin}

// ComponentImages are the names of the images BuildComponents makes:
// multus, sriov-cni, device plugin.
func ComponentImages() []string {
	var refs []string
	for _, s := range ComponentSources {
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

// CheckArchives checks that every component's archive is in dir with its
// pinned sha256, and reports every one that is not.
func CheckArchives(dir string) (map[string]string, error) {
	paths := map[string]string{}
	var errs []error
	for _, s := range ComponentSources {
		p, err := checkArchive(dir, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		paths[s.Project] = p
	}
	return paths, errors.Join(errs...)
}

// BuildComponents builds the images of multus, sriov-cni and the SR-IOV
// network device plugin from their source archives (see
// KUBEVIRTCI_UPSTREAM_DIR) into the engine and returns their names
// (ComponentImages). When the engine has all three built from the same
// inputs, it returns at once.
//
// Each image has the layout of the upstream image of its tag, so that the
// upstream manifests run it unchanged: multus's binary at
// /usr/src/multus-cni/bin/multus and its bash /entrypoint.sh (which runs
// `python`); /usr/bin/sriov and /entrypoint.sh for sriov-cni;
// /usr/bin/sriovdp, /entrypoint.sh and pci.ids (/usr/share/misc and
// /usr/share/hwdata) for the device plugin. They share one base layer,
// Debian minbase with images.ComponentPackages, instead of upstream's
// CentOS and Alpine bases. The device plugin image lacks upstream's
// ddptool (Intel DDP profiles; a C program the provider's selectors do not
// use).
func BuildComponents(ctx context.Context, opts Options) ([]string, error) {
	b, dir, archives, err := componentBuilder(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer b.close()
	o := &b.o

	inputs, err := b.componentInputs()
	if err != nil {
		return nil, err
	}
	refs := ComponentImages()
	upToDate := !o.Force
	for _, r := range refs {
		upToDate = upToDate && o.imageInputs(ctx, r) == inputs
	}
	if upToDate {
		o.Log.Infof(" • %s are up to date (inputs %s)", strings.Join(refs, ", "), inputs[:12])
		return refs, nil
	}

	srcs, bins, err := b.componentBinaries(ctx, dir, archives)
	if err != nil {
		return nil, err
	}
	var baseRoot string
	if err := o.Log.Run("Making the components' base layer (debootstrap "+images.DebianSuite+")", func() error {
		baseRoot, err = b.rootfs(ctx, componentsRootfs())
		return err
	}); err != nil {
		return nil, err
	}
	tarFile := filepath.Join(b.work, "components.tar")
	if err := o.Log.Run("Writing the component images", func() error {
		imgs, err := b.componentImages(srcs, bins, baseRoot, inputs)
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

// ComponentBinaries builds the components' binaries from their source
// archives (checked first; cached like the images' builds) and returns
// their paths by file name: "multus", "sriov" and "sriovdp". The SR-IOV VM
// suite runs them outside any image.
func ComponentBinaries(ctx context.Context, opts Options) (map[string]string, error) {
	b, dir, archives, err := componentBuilder(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer b.close()
	_, bins, err := b.componentBinaries(ctx, dir, archives)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, c := range componentBuilds(nil) {
		out[c.Output] = filepath.Join(bins[c.Name], c.Output)
	}
	return out, nil
}

// componentBuilder completes the options and checks the source archives
// (before anything runs), then starts a build. It returns the archives'
// folder and their paths by project.
func componentBuilder(ctx context.Context, opts Options) (*builder, string, map[string]string, error) {
	o, err := opts.complete()
	if err != nil {
		return nil, "", nil, err
	}
	dir := o.upstreamDir()
	archives, err := CheckArchives(dir)
	if err != nil {
		return nil, "", nil, err
	}
	b, err := newBuilder(ctx, o)
	if err != nil {
		return nil, "", nil, err
	}
	return b, dir, archives, nil
}

// componentBinaries unpacks the checked archives and builds the three
// components; it returns their source folders and their binaries' folders,
// by project.
func (b *builder) componentBinaries(ctx context.Context, dir string, archives map[string]string) (srcs, bins map[string]string, err error) {
	o := &b.o
	srcs, bins = map[string]string{}, map[string]string{}
	if err := o.Log.Run("Unpacking the source archives from "+dir, func() error {
		for _, s := range ComponentSources {
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
	for _, c := range componentBuilds(srcs) {
		c := c
		if err := o.Log.Run("Building "+c.Name, func() error {
			d, err := b.build(ctx, c)
			bins[c.Name] = d
			return err
		}); err != nil {
			return nil, nil, err
		}
	}
	return srcs, bins, nil
}

// componentInputs hashes everything the component images are made of.
func (b *builder) componentInputs() (string, error) {
	h := newHasher()
	h.add(recipe, "components", b.goVer, images.MultusGoToolchain, b.mirror(), versionsString())
	h.add(images.ComponentPackages...)
	for _, s := range ComponentSources {
		h.add(s.Project, s.Tag, s.Commit, s.SHA256)
	}
	if err := h.addDir(filepath.Join(b.o.SourceDir, "internal/nodeimage"), skipTests); err != nil {
		return "", err
	}
	return h.hex(), nil
}

// unpack unpacks a checked archive into the cache (once per sha256) and
// returns the project's folder in it.
func (b *builder) unpack(ctx context.Context, s images.UpstreamSource, archive string) (string, error) {
	// Not <project>-<key>: that is the pattern of the build outputs that
	// b.build prunes under src/ for a component of that name.
	prefix := "upstream-" + s.Project + "-"
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

// multusPkg holds multus's version variables.
const multusPkg = "gopkg.in/k8snetworkplumbingwg/multus-cni.v3/pkg/multus"

// componentBuilds are the Go builds of the three components, with the
// flags of their upstream build scripts: multus (hack/build-go.sh) and the
// device plugin (Makefile) from their vendor folders with the tag
// no_openssl, sriov-cni from the module proxy.
func componentBuilds(srcs map[string]string) []component {
	m, c, d := images.Multus, images.SRIOVCNI, images.SRIOVDevicePlugin
	return []component{
		{Name: m.Project, Dir: srcs[m.Project], SourceKey: m.SHA256, Packages: []string{"./cmd"}, Output: "multus",
			Flags: []string{"-mod=vendor", "-tags", "no_openssl"}, Toolchain: images.MultusGoToolchain,
			// hack/build-go.sh sets main.version, but the variables live
			// in pkg/multus: set those, so that `multus -version` tells.
			Ldflags: "-X " + multusPkg + ".version=" + m.Tag + " -X " + multusPkg + ".commit=" + m.Commit},
		{Name: c.Project, Dir: srcs[c.Project], SourceKey: c.SHA256, Packages: []string{"./cmd/sriov"}, Output: "sriov"},
		{Name: d.Project, Dir: srcs[d.Project], SourceKey: d.SHA256, Packages: []string{"./cmd/sriovdp"}, Output: "sriovdp",
			Flags: []string{"-mod=vendor", "-tags", "no_openssl"}},
	}
}

// componentsRootfs is the components' shared base layer.
func componentsRootfs() rootfsSpec {
	return rootfsSpec{Name: "components", Packages: images.ComponentPackages, prepare: prepareComponentsTree}
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
	return trimTree(ctx, b, dir)
}

// componentImages assembles the three images on the shared base layer.
func (b *builder) componentImages(srcs, bins map[string]string, baseRoot, inputs string) ([]builtImage, error) {
	base, err := b.layerFromTree("components-base", baseRoot)
	if err != nil {
		return nil, err
	}
	m, c, d := images.Multus, images.SRIOVCNI, images.SRIOVDevicePlugin
	entrypoint := func(s images.UpstreamSource) entry {
		return entry{Path: "/entrypoint.sh", Src: filepath.Join(srcs[s.Project], "images", "entrypoint.sh"), Mode: 0o755}
	}
	specs := []struct {
		src     images.UpstreamSource
		entries []entry
	}{
		{m, []entry{entrypoint(m), {Path: "/usr/src/multus-cni/bin/multus", Src: filepath.Join(bins[m.Project], "multus"), Mode: 0o755}}},
		{c, []entry{entrypoint(c), {Path: "/usr/bin/sriov", Src: filepath.Join(bins[c.Project], "sriov"), Mode: 0o755}}},
		{d, []entry{entrypoint(d), {Path: "/usr/bin/sriovdp", Src: filepath.Join(bins[d.Project], "sriovdp"), Mode: 0o755}}},
	}
	var imgs []builtImage
	for _, s := range specs {
		for _, e := range s.entries {
			if _, err := os.Stat(e.Src); err != nil {
				return nil, fmt.Errorf("%s image: %w", s.src.Project, err)
			}
		}
		l, err := b.layerFromEntries(s.src.Project, s.entries)
		if err != nil {
			return nil, err
		}
		img, err := ociImage([]v1.Layer{base, l}, v1.Config{
			Entrypoint: []string{"/entrypoint.sh"},
			WorkingDir: "/",
			Labels: map[string]string{
				InputsLabel:                         inputs,
				"io.kubevirtci.built-from":          "source",
				"org.opencontainers.image.source":   "https://github.com/k8snetworkplumbingwg/" + s.src.Project,
				"org.opencontainers.image.version":  s.src.Tag,
				"org.opencontainers.image.revision": s.src.Commit,
			},
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.src.Image(), err)
		}
		imgs = append(imgs, builtImage{Ref: s.src.Image(), Image: img})
	}
	return imgs, nil
}
