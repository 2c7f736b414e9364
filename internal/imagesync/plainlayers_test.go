package imagesync

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// With Compression "none", engine images are pushed as OCI images with
// uncompressed layers: the layer digests are the config's diff IDs, the
// content is the engine's, and a second sync sends nothing.
func TestSyncUncompressed(t *testing.T) {
	reg := newTestRegistry(t)
	eng := newFakeEngine(t)
	img := randomImage(t, 200*kib, 3)
	// containerd-store style ID: the image is exported and its digest
	// computed again on the second sync, without reading layer data.
	eng.add("kubevirt/virt-api:devel", "sha256:"+strings.Repeat("12", 32), func(p string) { writeDockerSave(t, p, img, "kubevirt/virt-api:devel") })
	o := engineOptions(reg, eng)
	o.Compression = CompressNone
	res, err := Sync(context.Background(), o)
	must(t, err)
	sent, _ := reg.rt.reset()
	if sent < 600*kib {
		t.Errorf("sent %d bytes, want the 600 KiB of uncompressed layers", sent)
	}
	got, err := remote.Image(reg.ref(t, "kubevirt/virt-api:devel"))
	must(t, err)
	if d, _ := got.Digest(); d != res.Images[0].Digest {
		t.Errorf("registry digest %s, reported %s", d, res.Images[0].Digest)
	}
	m, err := got.Manifest()
	must(t, err)
	cf, _ := img.ConfigFile()
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 3 {
		t.Fatalf("manifest %+v", m)
	}
	if cn, _ := got.ConfigName(); cn != mustConfigName(t, img) {
		t.Errorf("config %s, engine ID would be %s", cn, mustConfigName(t, img))
	}
	ls, _ := got.Layers()
	for k, d := range m.Layers {
		if d.MediaType != types.OCIUncompressedLayer || d.Digest != cf.RootFS.DiffIDs[k] {
			t.Errorf("layer %d: %+v, want diff ID %s", k, d, cf.RootFS.DiffIDs[k])
		}
		// The blob is the uncompressed layer, byte for byte.
		rc, err := ls[k].Compressed()
		must(t, err)
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		must(t, err)
		if "sha256:"+hex.EncodeToString(h.Sum(nil)) != cf.RootFS.DiffIDs[k].String() {
			t.Errorf("layer %d content does not hash to its diff ID", k)
		}
	}
	res2, err := Sync(context.Background(), o)
	must(t, err)
	if sent, reqs := reg.rt.reset(); sent != 0 || !res2.Images[0].Unchanged {
		t.Errorf("second sync sent %d bytes (%v): %+v", sent, reqs, res2.Images[0])
	}
}

// Entries are found by offset, through symbolic and hard links.
func TestIndexTar(t *testing.T) {
	f := filepath.Join(t.TempDir(), "a.tar")
	w, err := os.Create(f)
	must(t, err)
	tw := tar.NewWriter(w)
	put := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		must(t, tw.WriteHeader(h))
		_, err := tw.Write([]byte(body))
		must(t, err)
	}
	put(&tar.Header{Name: "x/", Typeflag: tar.TypeDir}, "")
	put(&tar.Header{Name: "x/layer.tar", Typeflag: tar.TypeReg}, strings.Repeat("a", 700))
	put(&tar.Header{Name: "y/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../x/layer.tar"}, "")
	put(&tar.Header{Name: "z/layer.tar", Typeflag: tar.TypeLink, Linkname: "w/layer.tar"}, "")
	put(&tar.Header{Name: "w/layer.tar", Typeflag: tar.TypeReg}, "hello")
	must(t, tw.Close())
	must(t, w.Close())
	idx, err := indexTar(f)
	must(t, err)
	for name, want := range map[string]string{"x/layer.tar": strings.Repeat("a", 700), "y/layer.tar": strings.Repeat("a", 700), "./z/layer.tar": "hello"} {
		e, err := resolveTarEntry(idx, name)
		must(t, err)
		l := &plainLayer{file: f, entry: e}
		rc, err := l.Compressed()
		must(t, err)
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != want {
			t.Errorf("%s: got %q", name, b)
		}
	}
	if _, err := resolveTarEntry(idx, "missing"); err == nil {
		t.Error("missing entry found")
	}
}
