package imagesync

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// With Compression "none", the uncompressed layers of an exported image are
// pushed as they are, as OCI "application/vnd.oci.image.layer.v1.tar" blobs.
// Their digests are the uncompressed digests the image config already lists,
// and their sizes are in the archive's tar headers, so the manifest is known
// without reading a byte of layer data, and uploads stream straight from the
// archive. The registry and the nodes then hold uncompressed blobs (more
// disk, no gzip on either side): a fair trade on one machine, where the
// registry is reached over loopback and the nodes pull over a local bridge.

// tarEntry is where a file's bytes are in a tar file.
type tarEntry struct {
	off, size int64
	link      string // for symbolic and hard links
	isLink    bool
	symlink   bool
}

// indexTar reads the headers of a tar file (skipping the contents) and
// returns where each entry's bytes are.
func indexTar(file string) (map[string]tarEntry, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	idx := map[string]tarEntry{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return idx, nil
		}
		if err != nil {
			return nil, err
		}
		// tar.Reader reads whole 512-byte blocks and nothing ahead, so
		// the file offset now is where the entry's data starts.
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		e := tarEntry{off: off, size: h.Size}
		switch h.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			e.isLink, e.symlink, e.link = true, h.Typeflag == tar.TypeSymlink, h.Linkname
		case tar.TypeReg:
		default:
			continue
		}
		idx[path.Clean(h.Name)] = e
	}
}

// resolve follows links (docker's older archives link duplicate layers).
func resolveTarEntry(idx map[string]tarEntry, name string) (tarEntry, error) {
	name = path.Clean(name)
	for hops := 0; hops < 8; hops++ {
		e, ok := idx[name]
		if !ok {
			return tarEntry{}, fmt.Errorf("%s not found in the archive", name)
		}
		if !e.isLink {
			return e, nil
		}
		if e.symlink && !path.IsAbs(e.link) {
			name = path.Join(path.Dir(name), e.link)
		} else {
			name = path.Clean(e.link)
		}
	}
	return tarEntry{}, fmt.Errorf("too many links for %s in the archive", name)
}

// plainLayer is an uncompressed layer inside an archive, pushed as is.
type plainLayer struct {
	file   string
	entry  tarEntry
	diffID v1.Hash
}

var _ partial.CompressedLayer = (*plainLayer)(nil)

func (l *plainLayer) Digest() (v1.Hash, error)            { return l.diffID, nil }
func (l *plainLayer) Size() (int64, error)                { return l.entry.size, nil }
func (l *plainLayer) MediaType() (types.MediaType, error) { return types.OCIUncompressedLayer, nil }

func (l *plainLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.file)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, l.entry.off, l.entry.size), f}, nil
}

// plainImage is an OCI image of an archive's config (byte for byte) and its
// uncompressed layers.
type plainImage struct {
	rawConfig []byte
	layers    []*plainLayer
	manifest  []byte
}

var _ partial.CompressedImageCore = (*plainImage)(nil)

func (i *plainImage) RawConfigFile() ([]byte, error)      { return i.rawConfig, nil }
func (i *plainImage) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (i *plainImage) RawManifest() ([]byte, error)        { return i.manifest, nil }

func (i *plainImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if cd, _, _ := v1.SHA256(bytes.NewReader(i.rawConfig)); cd == h {
		return partial.ConfigLayer(i)
	}
	for _, l := range i.layers {
		if l.diffID == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("blob %s is not in this image", h)
}

// openPlainImage builds a plainImage of the archive image whose config is
// raw and whose layers are the archive entries layerPaths, in order.
func openPlainImage(file string, raw []byte, layerPaths []string) (v1.Image, error) {
	var cf v1.ConfigFile
	if err := json.Unmarshal(raw, &cf); err != nil {
		return nil, fmt.Errorf("reading image archive %s: config: %w", file, err)
	}
	if len(cf.RootFS.DiffIDs) != len(layerPaths) {
		return nil, fmt.Errorf("reading image archive %s: the config lists %d layers, the archive %d", file, len(cf.RootFS.DiffIDs), len(layerPaths))
	}
	idx, err := indexTar(file)
	if err != nil {
		return nil, fmt.Errorf("reading image archive %s: %w", file, err)
	}
	cd, csize, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	img := &plainImage{rawConfig: raw}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: csize, Digest: cd},
	}
	for k, p := range layerPaths {
		e, err := resolveTarEntry(idx, p)
		if err != nil {
			return nil, fmt.Errorf("reading image archive %s: %w", file, err)
		}
		l := &plainLayer{file: file, entry: e, diffID: cf.RootFS.DiffIDs[k]}
		img.layers = append(img.layers, l)
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCIUncompressedLayer, Size: e.size, Digest: l.diffID})
	}
	if img.manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	return partial.CompressedToImage(img)
}
