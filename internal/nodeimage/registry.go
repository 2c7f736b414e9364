package nodeimage

import (
	"context"
	"io/fs"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kubevirt/kubevirtci-go/images"
)

// Registry image layout.
const (
	// RegistryPort is the port the registry listens on in its container.
	RegistryPort = 5000
	// RegistryDataDir holds the registry's images (a volume).
	RegistryDataDir = "/var/lib/registry"
	// RegistryConfig is the registry's configuration file in the image.
	RegistryConfig = "/etc/distribution/config.yml"
)

// BuildRegistry builds the local registry image (distribution/distribution
// v3, tag images.RegistryImage unless Options.Tag says otherwise) into the
// engine and returns its name. When the engine has the image built from the
// same inputs, it returns at once.
func BuildRegistry(ctx context.Context, opts Options) (string, error) {
	o, err := opts.complete()
	if err != nil {
		return "", err
	}
	tag := o.Tag
	if tag == "" {
		tag = images.RegistryImage
	}
	b, err := newBuilder(ctx, o)
	if err != nil {
		return "", err
	}
	defer b.close()

	inputs, err := b.registryInputs()
	if err != nil {
		return "", err
	}
	if !o.Force && o.imageInputs(ctx, tag) == inputs {
		o.Log.Infof(" • %s is up to date (inputs %s)", tag, inputs[:12])
		return tag, nil
	}
	var bin string
	if err := o.Log.Run("Building registry "+images.Distribution, func() error {
		bin, err = b.build(ctx, registryComponent)
		return err
	}); err != nil {
		return "", err
	}
	tarFile := filepath.Join(b.work, "registry.tar")
	if err := o.Log.Run("Writing the registry image", func() error {
		cfg, err := fs.ReadFile(images.Files, "registry/config.yml")
		if err != nil {
			return err
		}
		entries := append(staticBase(),
			entry{Path: "/usr/local/bin/registry", Src: filepath.Join(bin, "registry"), Mode: 0o755},
			entry{Path: RegistryConfig, Data: cfg},
			entry{Path: RegistryDataDir, Dir: true},
		)
		layer, err := b.layerFromEntries("registry", entries)
		if err != nil {
			return err
		}
		img, err := ociImage([]v1.Layer{layer}, v1.Config{
			Entrypoint:   []string{"/usr/local/bin/registry"},
			Cmd:          []string{"serve", RegistryConfig},
			ExposedPorts: map[string]struct{}{"5000/tcp": {}},
			Volumes:      map[string]struct{}{RegistryDataDir: {}},
			Labels: map[string]string{
				InputsLabel:                  inputs,
				"io.kubevirtci.built-from":   "source",
				"io.kubevirtci.distribution": images.Distribution,
			},
		})
		if err != nil {
			return err
		}
		return writeImages(tarFile, []builtImage{{Ref: tag, Image: img}})
	}); err != nil {
		return "", err
	}
	old := o.imageID(ctx, tag)
	if err := o.Log.Run("Loading "+tag+" into "+o.CRI, func() error {
		_, err := o.cri(ctx, nil, "load", "-i", tarFile)
		return err
	}); err != nil {
		return "", err
	}
	o.removeReplaced(ctx, old, tag)
	return tag, nil
}

// registryInputs hashes everything the registry image is made of.
func (b *builder) registryInputs() (string, error) {
	h := newHasher()
	h.add(recipe, "registry", b.goVer, images.Distribution, images.DebianSuite)
	if err := h.addFS(images.Files, "registry", nil); err != nil {
		return "", err
	}
	for _, d := range []string{"images/build/registry", "internal/nodeimage"} {
		if err := h.addDir(filepath.Join(b.o.SourceDir, d), skipTests); err != nil {
			return "", err
		}
	}
	return h.hex(), nil
}
