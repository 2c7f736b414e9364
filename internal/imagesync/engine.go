package imagesync

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
)

// EngineImage is one line of `<engine> images`.
type EngineImage struct {
	Repository string // as the engine shows it: kubevirt/virt-api, localhost/kubevirt/virt-api
	Tag        string
	ID         string // sha256:<hex>
}

// Ref is repository:tag.
func (e EngineImage) Ref() string { return e.Repository + ":" + e.Tag }

// listFormat works for docker and podman alike; none of the fields holds a space.
const listFormat = "{{.Repository}} {{.Tag}} {{.ID}}"

// ListEngine lists the tagged images of the container engine cli (docker or podman).
func ListEngine(ctx context.Context, r cmdrun.Runner, cli string) ([]EngineImage, error) {
	out, err := r.Run(ctx, nil, cli, "images", "--no-trunc", "--format", listFormat)
	if err != nil {
		return nil, fmt.Errorf("listing the images of %s: %w", cli, err)
	}
	var imgs []EngineImage
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		if f[0] == "<none>" || f[1] == "<none>" {
			continue // dangling or untagged
		}
		id := f[2]
		if !strings.Contains(id, ":") {
			id = "sha256:" + id
		}
		imgs = append(imgs, EngineImage{Repository: f[0], Tag: f[1], ID: id})
	}
	return imgs, nil
}

// engineMatches returns the images under the prefix with the tag, keyed by
// their name under the prefix. Two different images for one name (podman can
// list both localhost/kubevirt/x and docker.io/kubevirt/x) are an error.
func engineMatches(imgs []EngineImage, p Prefix, tag string) (map[string]EngineImage, error) {
	out := map[string]EngineImage{}
	for _, img := range imgs {
		if img.Tag != tag {
			continue
		}
		n, ok := p.match(img.Repository)
		if !ok {
			continue
		}
		if prev, dup := out[n]; dup && prev.ID != img.ID {
			return nil, fmt.Errorf("two different images would both be pushed as %s/%s:%s: %s (%s) and %s (%s); remove or retag one of them",
				p.Path, n, tag, prev.Ref(), shortDigest(prev.ID), img.Ref(), shortDigest(img.ID))
		}
		out[n] = img
	}
	return out, nil
}

// nearMisses lists images that look close to what was asked for: the same
// prefix with another tag, or the same tag under another prefix.
func nearMisses(imgs []EngineImage, p Prefix, tag string) []string {
	seen := map[string]bool{}
	var out []string
	for _, img := range imgs {
		_, under := p.match(img.Repository)
		_, path := splitHost(img.Repository)
		if under || img.Tag == tag || strings.Contains(path, p.Path) {
			if r := img.Ref(); !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	sort.Strings(out)
	const max = 20
	if len(out) > max {
		out = append(out[:max], fmt.Sprintf("... and %d more", len(out)-max))
	}
	return out
}

// saveEngineImage exports ref with `<cli> save -o` into dir (a fresh
// folder) and returns the file. The engine writes the archive straight to
// disk, so large images are not held in memory.
func saveEngineImage(ctx context.Context, r cmdrun.Runner, cli, ref, dir string) (string, error) {
	path := filepath.Join(dir, "image.tar")
	if _, err := r.Run(ctx, nil, cli, "save", "-o", path, ref); err != nil {
		return "", fmt.Errorf("exporting %s from %s: %w", ref, cli, err)
	}
	return path, nil
}
