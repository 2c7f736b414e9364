package imagesync

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
)

// candidate is one image to push: where it comes from and how to open it.
type candidate struct {
	name     string // under the prefix: virt-api
	tag      string
	origin   string // for messages: "docker image kubevirt/virt-api:devel", "file x.tar"
	engineID string // the engine's image ID, for engine images
	// open returns the image or index, and the layers it compresses on the
	// way (to feed the cache). dir is a private temporary folder.
	open func(ctx context.Context, dir string) (remote.Taggable, []*gzLayer, error)
}

// Annotations naming an image in an OCI layout's index.json.
const (
	annotationContainerdName = "io.containerd.image.name"          // full reference (containerd, buildkit, docker save)
	annotationRefName        = "org.opencontainers.image.ref.name" // a tag, or a full reference
)

// engineCandidates lists the engine's images under the prefix with the tag.
// When none matches it returns an error listing what looks close.
func engineCandidates(ctx context.Context, r cmdrun.Runner, cli string, p Prefix, tag string, c *cache, plain bool) ([]candidate, []EngineImage, error) {
	all, err := ListEngine(ctx, r, cli)
	if err != nil {
		return nil, nil, err
	}
	m, err := engineMatches(all, p, tag)
	if err != nil {
		return nil, all, err
	}
	var out []candidate
	for n, img := range m {
		ref := img.Ref()
		out = append(out, candidate{
			name:     n,
			tag:      tag,
			origin:   cli + " image " + ref,
			engineID: img.ID,
			open: func(ctx context.Context, dir string) (remote.Taggable, []*gzLayer, error) {
				file, err := saveEngineImage(ctx, r, cli, ref, dir)
				if err != nil {
					return nil, nil, err
				}
				img, layers, err := openArchiveImage(file, nil, dir, c, plain)
				if err != nil {
					return nil, nil, fmt.Errorf("%s save of %s: %w", cli, ref, err)
				}
				return img, layers, nil
			},
		})
	}
	return out, all, nil
}

// fileCandidates lists the images of the SYNC_SOURCES entries: OCI image
// layout folders, OCI layout archives, and docker archives (`docker save`,
// `podman save`, go-containerregistry's tarball.Write). Names come from the
// files (see nameFromRef); extract is a folder for unpacking OCI archives.
func fileCandidates(paths []string, p Prefix, defTag, extract string, c *cache, plain bool) ([]candidate, error) {
	var out []candidate
	for k, src := range paths {
		st, err := os.Stat(src)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("SYNC_SOURCES: %s does not exist; list OCI image layout folders or image tarballs (docker save, podman save)", src)
			}
			return nil, fmt.Errorf("SYNC_SOURCES: %w", err)
		}
		var cs []candidate
		if st.IsDir() {
			if _, err := os.Stat(filepath.Join(src, "index.json")); err != nil {
				return nil, fmt.Errorf("SYNC_SOURCES: %s is a folder without index.json, not an OCI image layout; list OCI layout folders or image tarballs", src)
			}
			cs, err = layoutCandidates(src, src, p, defTag)
		} else {
			cs, err = archiveCandidates(src, p, defTag, filepath.Join(extract, fmt.Sprint(k)), c, plain)
		}
		if err != nil {
			return nil, err
		}
		if len(cs) == 0 {
			return nil, fmt.Errorf("SYNC_SOURCES: %s holds no image", src)
		}
		out = append(out, cs...)
	}
	return out, nil
}

func archiveCandidates(file string, p Prefix, defTag, extract string, c *cache, plain bool) ([]candidate, error) {
	kind, err := archiveKind(file)
	if err != nil {
		return nil, err
	}
	if kind == "oci" {
		if err := untar(file, extract); err != nil {
			return nil, fmt.Errorf("SYNC_SOURCES: unpacking OCI archive %s: %w", file, err)
		}
		return layoutCandidates(extract, file, p, defTag)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(file) })
	if err != nil {
		return nil, fmt.Errorf("SYNC_SOURCES: reading %s: %w", file, err)
	}
	var out []candidate
	for _, e := range m {
		if len(e.RepoTags) == 0 {
			if len(m) > 1 {
				return nil, fmt.Errorf("SYNC_SOURCES: %s holds several images, one without a name; tag every image (docker save NAME:TAG ...)", file)
			}
			n, t, err := nameFromFile(file, "", defTag)
			if err != nil {
				return nil, err
			}
			out = append(out, archiveCandidate(file, nil, n, t, c, plain))
			continue
		}
		for _, rt := range e.RepoTags {
			n, t, err := nameFromRef(rt, p, defTag)
			if err != nil {
				return nil, fmt.Errorf("SYNC_SOURCES: %s: %w", file, err)
			}
			tag, err := name.NewTag(rt)
			if err != nil {
				return nil, fmt.Errorf("SYNC_SOURCES: %s: image name %q: %w", file, rt, err)
			}
			sel := &tag
			if len(m) == 1 {
				sel = nil // one image: no need to look it up by tag
			}
			out = append(out, archiveCandidate(file, sel, n, t, c, plain))
		}
	}
	return out, nil
}

func archiveCandidate(file string, sel *name.Tag, n, t string, c *cache, plain bool) candidate {
	return candidate{
		name: n, tag: t, origin: "file " + file,
		open: func(_ context.Context, dir string) (remote.Taggable, []*gzLayer, error) {
			img, layers, err := openArchiveImage(file, sel, dir, c, plain)
			return img, layers, err
		},
	}
}

// layoutCandidates lists the images and indexes of the OCI layout in dir
// (origin names the file or folder the user listed).
func layoutCandidates(dir, origin string, p Prefix, defTag string) ([]candidate, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("SYNC_SOURCES: reading OCI layout %s: %w", origin, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("SYNC_SOURCES: reading OCI layout %s: %w", origin, err)
	}
	var descs []v1.Descriptor
	for _, d := range im.Manifests {
		if d.MediaType.IsImage() || d.MediaType.IsIndex() {
			descs = append(descs, d)
		}
	}
	var out []candidate
	for _, d := range descs {
		var n, t string
		if full := d.Annotations[annotationContainerdName]; full != "" {
			n, t, err = nameFromRef(full, p, defTag)
		} else if rn := d.Annotations[annotationRefName]; strings.Contains(rn, "/") {
			n, t, err = nameFromRef(rn, p, defTag)
		} else if rn != "" || len(descs) == 1 {
			n, t, err = nameFromFile(origin, rn, defTag)
		} else {
			err = fmt.Errorf("image %s has no name (annotation %s) and the layout holds several images; name each one", d.Digest, annotationRefName)
		}
		if err != nil {
			return nil, fmt.Errorf("SYNC_SOURCES: %s: %w", origin, err)
		}
		d := d
		out = append(out, candidate{
			name: n, tag: t, origin: "OCI layout " + origin,
			open: func(context.Context, string) (remote.Taggable, []*gzLayer, error) {
				if d.MediaType.IsIndex() {
					ii, err := idx.ImageIndex(d.Digest)
					return ii, nil, err
				}
				img, err := idx.Image(d.Digest)
				return img, nil, err
			},
		})
	}
	return out, nil
}

// nameFromRef takes the name under the prefix and the tag from a full
// reference found in a file. Files are not in an engine, so the registry host
// of the reference does not matter; the path must be under the prefix.
func nameFromRef(ref string, p Prefix, defTag string) (string, string, error) {
	repo, tag, _ := splitRef(ref)
	_, path := splitHost(repo)
	n, ok := Prefix{Path: p.Path}.match(path)
	if !ok {
		return "", "", fmt.Errorf("image %s is not under DOCKER_PREFIX=%s; tag it %s/<name>:<tag> or set DOCKER_PREFIX", ref, p, p.Path)
	}
	if tag == "" {
		tag = defTag
	}
	return n, tag, nil
}

// nameFromFile names an image that carries no repository by its file or
// folder: _out/virt-api.tar is virt-api.
func nameFromFile(file, tag, defTag string) (string, string, error) {
	base := filepath.Base(filepath.Clean(file))
	for _, ext := range []string{".tar", ".oci"} {
		base = strings.TrimSuffix(base, ext)
	}
	if _, err := name.NewRepository("localhost/" + base); err != nil || base == "" {
		return "", "", fmt.Errorf("SYNC_SOURCES: %s holds an image without a repository name and %q is no usable name; tag the image or rename the file to <name>.tar", file, base)
	}
	if tag == "" {
		tag = defTag
	}
	if _, err := name.NewTag("localhost/x:" + tag); err != nil {
		return "", "", fmt.Errorf("SYNC_SOURCES: %s: tag %q: %w", file, tag, err)
	}
	return base, tag, nil
}

// archiveKind tells a docker archive (manifest.json) from an OCI layout
// archive (index.json only).
func archiveKind(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("SYNC_SOURCES: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	hasIndex := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("SYNC_SOURCES: %s is not an image tarball (docker save, podman save or an OCI layout archive): %v", file, err)
		}
		switch filepath.Clean(h.Name) {
		case "manifest.json":
			return "docker", nil
		case "index.json":
			hasIndex = true
		}
	}
	if hasIndex {
		return "oci", nil
	}
	return "", fmt.Errorf("SYNC_SOURCES: %s is a tar file without manifest.json or index.json, not an image archive", file)
}

// untar unpacks the regular files and folders of an OCI archive into dir.
func untar(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		rel := filepath.Clean(h.Name)
		if rel == "." {
			continue
		}
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("entry %q points outside the archive", h.Name)
		}
		target := filepath.Join(dir, rel)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			w, err := os.Create(target)
			if err != nil {
				return err
			}
			_, err = io.Copy(w, tr)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}
