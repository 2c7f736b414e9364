package imagesync

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// An image exported by `docker save` or `podman save` holds uncompressed
// layers. go-containerregistry's tarball.Image would gzip each layer twice
// when pushing (once for the digest the manifest needs, once more while
// uploading). Here each layer is compressed once, into a temporary file,
// and, with a cache of earlier results (uncompressed digest -> compressed
// digest and size), not at all when the registry already holds the blob.
// gzip at a fixed level is deterministic, so the same layer always gets the
// same digest and a second sync finds everything in place.

// gzLayer is a layer of an uncompressed archive, compressed on demand.
type gzLayer struct {
	src    v1.Layer // gives Uncompressed()
	diffID v1.Hash
	dir    string // where the compressed file goes

	mu     sync.Mutex
	done   bool // digest and size known
	digest v1.Hash
	size   int64
	file   string // compressed bytes, once written
	hinted bool   // digest and size come from the cache, not from this run
	err    error
}

var _ partial.CompressedLayer = (*gzLayer)(nil)

func (l *gzLayer) DiffID() (v1.Hash, error)             { return l.diffID, nil }
func (l *gzLayer) MediaType() (types.MediaType, error)  { return types.DockerLayer, nil }
func (l *gzLayer) Uncompressed() (io.ReadCloser, error) { return l.src.Uncompressed() }

func (l *gzLayer) Digest() (v1.Hash, error) {
	if err := l.ensure(false); err != nil {
		return v1.Hash{}, err
	}
	return l.digest, nil
}

func (l *gzLayer) Size() (int64, error) {
	if err := l.ensure(false); err != nil {
		return 0, err
	}
	return l.size, nil
}

func (l *gzLayer) Compressed() (io.ReadCloser, error) {
	if err := l.ensure(true); err != nil {
		return nil, err
	}
	return os.Open(l.file)
}

// computed returns digest and size when this run compressed the layer
// (worth remembering in the cache).
func (l *gzLayer) computed() (v1.Hash, int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.digest, l.size, l.done && !l.hinted && l.err == nil
}

// ensure computes digest and size; with needFile, it also makes sure the
// compressed bytes are on disk (a hinted layer whose blob the registry lacks).
func (l *gzLayer) ensure(needFile bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if l.done && (!needFile || l.file != "") {
		return nil
	}
	file, digest, size, err := l.compress()
	if err != nil {
		l.err = err
		return err
	}
	if l.hinted && (digest != l.digest || size != l.size) {
		os.Remove(file)
		l.err = fmt.Errorf("layer %s compressed to %s (%d bytes), but the sync cache said %s (%d bytes): "+
			"the cache is stale (a different gzip implementation?); delete it and sync again", l.diffID, digest, size, l.digest, l.size)
		return l.err
	}
	l.file, l.digest, l.size, l.done = file, digest, size, true
	return nil
}

// testHookCompress, when set, is called for each layer compressed.
var testHookCompress func(diffID v1.Hash)

func (l *gzLayer) compress() (string, v1.Hash, int64, error) {
	if testHookCompress != nil {
		testHookCompress(l.diffID)
	}
	rc, err := l.src.Uncompressed()
	if err != nil {
		return "", v1.Hash{}, 0, err
	}
	defer rc.Close()
	f, err := os.CreateTemp(l.dir, "layer-*.gz")
	if err != nil {
		return "", v1.Hash{}, 0, err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	zw, _ := gzip.NewWriterLevel(cw, gzip.BestSpeed)
	_, err = io.Copy(zw, rc)
	if err == nil {
		err = zw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", v1.Hash{}, 0, fmt.Errorf("compressing layer %s: %w", l.diffID, err)
	}
	return f.Name(), v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// gzImage is an image of an uncompressed archive with its config kept byte
// for byte (so its digest stays the engine's image ID) and gzLayers.
type gzImage struct {
	rawConfig []byte
	layers    []*gzLayer

	once     sync.Once
	manifest []byte
	err      error
}

var _ partial.CompressedImageCore = (*gzImage)(nil)

func (i *gzImage) RawConfigFile() ([]byte, error)      { return i.rawConfig, nil }
func (i *gzImage) MediaType() (types.MediaType, error) { return types.DockerManifestSchema2, nil }

func (i *gzImage) RawManifest() ([]byte, error) {
	i.once.Do(func() {
		cd, size, err := v1.SHA256(bytes.NewReader(i.rawConfig))
		if err != nil {
			i.err = err
			return
		}
		m := v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.DockerManifestSchema2,
			Config:        v1.Descriptor{MediaType: types.DockerConfigJSON, Size: size, Digest: cd},
		}
		// Compress the layers in parallel: this is where the CPU time goes.
		errs := make([]error, len(i.layers))
		var wg sync.WaitGroup
		sem := make(chan struct{}, compressJobs)
		for k, l := range i.layers {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				errs[k] = l.ensure(false)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			i.err = err
			return
		}
		for _, l := range i.layers {
			m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.DockerLayer, Size: l.size, Digest: l.digest})
		}
		i.manifest, i.err = json.Marshal(m)
	})
	return i.manifest, i.err
}

func (i *gzImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if cd, _, _ := v1.SHA256(bytes.NewReader(i.rawConfig)); cd == h {
		return partial.ConfigLayer(i)
	}
	for _, l := range i.layers {
		if d, err := l.Digest(); err == nil && d == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("blob %s is not in this image", h)
}

// compressJobs bounds parallel layer compression within one image.
var compressJobs = 4

// openArchiveImage opens the image of a docker-archive tarball (the output
// of `docker save` / `podman save`, or tarball.Write) at path, as tag (nil
// when the archive holds one image). Archives with compressed layers are
// used as they are. Uncompressed ones become, with plain, a plainImage (see
// plainlayers.go), else a gzImage whose layers are compressed into dir,
// using and feeding the layer cache c.
func openArchiveImage(path string, tag *name.Tag, dir string, c *cache, plain bool) (v1.Image, []*gzLayer, error) {
	fail := func(err error) (v1.Image, []*gzLayer, error) {
		return nil, nil, fmt.Errorf("reading image archive %s: %w", path, err)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		return fail(err)
	}
	desc, err := archiveDescriptor(m, tag)
	if err != nil {
		return fail(err)
	}
	compressed, err := archiveLayersCompressed(path, desc)
	if err != nil {
		return fail(err)
	}
	img, err := tarball.ImageFromPath(path, tag)
	if err != nil {
		return fail(err)
	}
	if compressed {
		return img, nil, nil
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return fail(err)
	}
	if plain {
		pi, err := openPlainImage(path, raw, desc.Layers)
		return pi, nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fail(err)
	}
	gi := &gzImage{rawConfig: raw}
	for _, d := range cf.RootFS.DiffIDs {
		src, err := img.LayerByDiffID(d)
		if err != nil {
			return fail(err)
		}
		l := &gzLayer{src: src, diffID: d, dir: dir}
		if h, ok := c.layer(d); ok {
			l.digest, l.size, l.done, l.hinted = h.Digest, h.Size, true, true
		}
		gi.layers = append(gi.layers, l)
	}
	out, err := partial.CompressedToImage(gi)
	return out, gi.layers, err
}

// archiveDescriptor picks the image tag names in an archive's manifest.json,
// or its only image when tag is nil.
func archiveDescriptor(m tarball.Manifest, tag *name.Tag) (tarball.Descriptor, error) {
	if tag == nil {
		if len(m) != 1 {
			return tarball.Descriptor{}, fmt.Errorf("the archive holds %d images, name one", len(m))
		}
		return m[0], nil
	}
	for _, d := range m {
		for _, rt := range d.RepoTags {
			if t, err := name.NewTag(rt); err == nil && t.String() == tag.String() {
				return d, nil
			}
		}
	}
	return tarball.Descriptor{}, fmt.Errorf("no image %s in the archive", tag)
}

// archiveLayersCompressed peeks at the first layer of an archive (as
// go-containerregistry's tarball package does) to tell gzip/zstd from plain tar.
func archiveLayersCompressed(file string, d tarball.Descriptor) (bool, error) {
	if len(d.Layers) == 0 {
		return false, nil
	}
	head, err := tarEntryHead(file, d.Layers[0], 4)
	if err != nil {
		return false, err
	}
	gz := len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b
	zst := bytes.Equal(head, []byte{0x28, 0xb5, 0x2f, 0xfd})
	return gz || zst, nil
}

// tarEntryHead returns the first n bytes of the entry name in the tar file,
// following one symbolic or hard link (docker's older archives link
// duplicate layers).
func tarEntryHead(file, name string, n int) ([]byte, error) {
	for hops := 0; hops < 3; hops++ {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(f)
		var next string
		for {
			h, err := tr.Next()
			if err == io.EOF {
				f.Close()
				return nil, fmt.Errorf("%s not found in the archive", name)
			}
			if err != nil {
				f.Close()
				return nil, err
			}
			if path.Clean(h.Name) != path.Clean(name) {
				continue
			}
			if h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink {
				next = h.Linkname
				if h.Typeflag == tar.TypeSymlink && !path.IsAbs(next) {
					next = path.Join(path.Dir(name), next)
				}
				break
			}
			buf := make([]byte, n)
			k, err := io.ReadFull(tr, buf)
			f.Close()
			if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
				return nil, err
			}
			return buf[:k], nil
		}
		f.Close()
		name = next
	}
	return nil, fmt.Errorf("too many links for %s in the archive", name)
}
