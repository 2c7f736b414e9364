package nodeimage

import (
	"compress/gzip"
	"fmt"
	"path/filepath"
	"runtime"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// defaultPath is the PATH of the images built here.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// staticBase are the few files an image of static binaries needs: /tmp,
// users and groups for root and nobody, and name service order.
func staticBase() []entry {
	return []entry{
		{Path: "/tmp", Dir: true, Mode: 0o1777},
		{Path: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n")},
		{Path: "/etc/group", Data: []byte("root:x:0:\nnobody:x:65534:\n")},
		{Path: "/etc/nsswitch.conf", Data: []byte("hosts: files dns\n")},
	}
}

// layerFile returns a layer backed by a tar file (compressed quickly).
func layerFile(file string) (v1.Layer, error) {
	return tarball.LayerFromFile(file, tarball.WithCompressionLevel(gzip.BestSpeed))
}

// layerFromEntries writes entries to a tar file in the work directory and
// returns it as a layer.
func (b *builder) layerFromEntries(name string, entries []entry) (v1.Layer, error) {
	file := filepath.Join(b.work, "layer-"+name+".tar")
	if err := writeEntriesFile(file, entries); err != nil {
		return nil, err
	}
	return layerFile(file)
}

// layerFromTree writes the directory tree root as a tar file in the work
// directory and returns it as a layer.
func (b *builder) layerFromTree(name, root string) (v1.Layer, error) {
	file := filepath.Join(b.work, "layer-"+name+".tar")
	if err := writeTreeFile(file, root); err != nil {
		return nil, err
	}
	return layerFile(file)
}

// ociImage stacks layers into an image for linux on this machine's
// architecture with the given runtime config.
func ociImage(layers []v1.Layer, cfg v1.Config) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: epoch}
	if len(cfg.Env) == 0 {
		cfg.Env = []string{defaultPath}
	}
	cf.Config = cfg
	return mutate.ConfigFile(img, cf)
}

// builtImage is an image and the name it is loaded under.
type builtImage struct {
	Ref   string
	Image v1.Image
}

// writeImages writes images into one docker-archive tarball (layers they
// share are written once) that `ctr images import` and `docker load` read.
func writeImages(file string, imgs []builtImage) error {
	m := map[name.Reference]v1.Image{}
	for _, i := range imgs {
		ref, err := name.ParseReference(i.Ref)
		if err != nil {
			return fmt.Errorf("image name %q: %w", i.Ref, err)
		}
		m[ref] = i.Image
	}
	return tarball.MultiRefWriteToFile(file, m)
}

// refs returns the names of images, sorted.
func refs(imgs []builtImage) []string {
	var r []string
	for _, i := range imgs {
		r = append(r, i.Ref)
	}
	sort.Strings(r)
	return r
}
