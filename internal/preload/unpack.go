// Package preload unpacks the images of a node image's containerd store
// ahead of time, in a throwaway container that is then committed as the
// nodes' image, so that no node unpacks an image while the cluster starts.
//
// A committed image cannot carry every unpacked image faithfully. An
// unpacked layer that deletes files holds overlayfs whiteouts (0/0
// character devices, and directories marked opaque by an xattr), and an
// image layer cannot: docker reads such entries of a container as its own
// deletions. In the throwaway container a deleted file makes the unpack
// fail ("failed to convert whiteout file": the store is on the container's
// overlayfs), and an opaque directory loses its mark in the commit, so
// that the files it hides come back. So every layer is listed first, and
// an image any of whose layers deletes anything (or cannot be listed) is
// left packed, as kind's node images carry all theirs: the node unpacks it
// when a pod first runs it, faithfully, on its /var volume.
package preload

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Execer runs a command in a running container and returns its stdout
// (cri.CLI does).
type Execer interface {
	Exec(ctx context.Context, container string, args ...string) ([]byte, error)
}

// Result is what Unpack did.
type Result struct {
	Unpacked []string          // images unpacked
	Packed   map[string]string // images left packed, and why
	Removed  int               // layers' blobs removed
	Layers   Relocated         // where the unpacked layers are (Make)
}

func (r Result) String() string {
	s := fmt.Sprintf("%d images unpacked, %d layer blobs removed", len(r.Unpacked), r.Removed)
	if r.Layers != (Relocated{}) {
		s += "; " + r.Layers.String()
	}
	for _, ref := range slices.Sorted(maps.Keys(r.Packed)) {
		s += fmt.Sprintf("; %s left packed (%s)", ref, r.Packed[ref])
	}
	return s
}

const ns = "--namespace=k8s.io"

// Unpack unpacks every image of the k8s.io namespace of the containerd in
// container whose layers delete nothing, into the default snapshotter (the
// one the CRI plugin uses), and removes the blobs of the layers that only
// unpacked images use: the CRI plugin runs containers from the snapshots
// and needs of an image only its manifest and config, as with containerd's
// own discard_unpacked_layers for pulls (`ctr images check` then calls the
// image incomplete, and unpacked). The removed blobs are collected at once,
// so that a commit right after does not carry them.
//
// An image whose unpack fails anyway (an overlayfs that cannot be nested
// here) is left packed too: the preload is an optimisation, never a reason
// for a cluster-up to fail.
func Unpack(ctx context.Context, e Execer, container string) (Result, error) {
	res := Result{Packed: map[string]string{}}
	imgs, err := e.Exec(ctx, container, "ctr", ns, "images", "ls")
	if err != nil {
		return res, fmt.Errorf("listing the images: %w", err)
	}
	content, err := e.Exec(ctx, container, "ctr", ns, "content", "ls")
	if err != nil {
		return res, fmt.Errorf("listing the content: %w", err)
	}
	st := parseStore(string(imgs), string(content))
	layers := st.allLayers()
	scan := map[string]string{}
	if len(layers) > 0 {
		out, err := e.Exec(ctx, container, append([]string{"sh", "-c", scanLayers, "sh"}, layers...)...)
		if err != nil {
			return res, fmt.Errorf("listing the layers' files: %w", err)
		}
		scan = parseScan(string(out))
	}
	plan := st.plan(scan)
	res.Packed = plan.packed
	if len(plan.unpack) > 0 {
		out, err := e.Exec(ctx, container, append([]string{"sh", "-c", mountEach, "sh"}, plan.unpack...)...)
		if err != nil {
			return res, fmt.Errorf("unpacking the images: %w", err)
		}
		done, failed := parseMounts(string(out))
		for _, ref := range plan.unpack {
			if why, ok := failed[ref]; ok {
				res.Packed[ref] = "its unpack failed here: " + why
			} else if done[ref] {
				res.Unpacked = append(res.Unpacked, ref)
			} else {
				res.Packed[ref] = "no word of its unpack"
			}
		}
	}
	remove := st.removable(res.Unpacked)
	if len(remove) > 0 {
		if _, err := e.Exec(ctx, container, append([]string{"sh", "-c", removeBlobs, "sh"}, remove...)...); err != nil {
			return res, fmt.Errorf("removing the unpacked layers' blobs: %w", err)
		}
	}
	res.Removed = len(remove)
	return res, nil
}

// scanLayers prints, for each layer digest given, "DIGEST clean" when its
// tar lists no whiteout (a name .wh.*, which also marks an opaque
// directory), "DIGEST deletes" when it does, "DIGEST unreadable" when it
// cannot be listed (a compression this image has no tool for, such as
// zstd: tar fails on it). A layer with no file (a tar of zero blocks, as
// some builders write for ENV or WORKDIR) is clean. The blob is read once
// for its first bytes, and again to list it.
const scanLayers = `list=$(mktemp)
for d; do
	magic=$(ctr ` + ns + ` content get "$d" | head -c 4 | od -An -tx1 | tr -d ' \n')
	case "$magic" in
	1f8b*) unz="gzip -dc" ;;
	*) unz=cat ;;
	esac
	if ctr ` + ns + ` content get "$d" | $unz | tar -t >"$list" 2>/dev/null; then
		if grep -q -E '(^|/)\.wh\.' "$list"; then echo "$d deletes"; else echo "$d clean"; fi
	else
		echo "$d unreadable"
	fi
done
rm -f "$list"
`

// mountEach unpacks each image given by mounting it once (ctr has no unpack
// command; the unpacked layers stay with the image once the mount is
// removed), each at its own mount point (containerd 2 keeps a removed one's
// name for a while), and prints "unpacked REF" or "failed REF: why".
const mountEach = `dir=$(mktemp -d)
n=0
for ref; do
	n=$((n + 1))
	mkdir "$dir/$n"
	if err=$(ctr ` + ns + ` images mount "$ref" "$dir/$n" 2>&1 >/dev/null); then
		ctr ` + ns + ` images unmount --rm "$dir/$n" >/dev/null 2>&1 || true
		echo "unpacked $ref"
	else
		echo "failed $ref: $(echo "$err" | grep -v 'level=warning' | tr '\n' ' ')"
	fi
done
rm -rf "$dir"
`

// removeBlobs removes the given blobs and then collects the garbage at once
// (containerd would otherwise delete the files some time later, maybe
// after the container is committed): deleting a lease with --sync runs the
// collection before it returns.
const removeBlobs = `set -e
ctr ` + ns + ` content rm "$@" >/dev/null
` + collect

// collect runs containerd's garbage collection and waits for it, which
// also deletes the directories of removed snapshots (containerd 2 deletes
// them only then).
const collect = `ctr ` + ns + ` leases create --id kubevirtci-preload-gc >/dev/null
ctr ` + ns + ` leases delete --sync kubevirtci-preload-gc
`

// store is what the image and content lists say: each named image's target,
// and the manifests and layers each blob names.
type store struct {
	images    map[string]string   // image name -> target digest
	manifests map[string][]string // index -> its manifests (present ones)
	layers    map[string][]string // manifest -> its layers
	present   map[string]bool
}

const (
	manifestLabel = "containerd.io/gc.ref.content.m."
	layerLabel    = "containerd.io/gc.ref.content.l."
)

// parseStore reads `ctr images ls` (REF TYPE DIGEST ...) and `ctr content
// ls` (DIGEST SIZE AGE LABELS, the labels comma-separated). Images named
// by a digest (the CRI plugin's aliases of named ones) are left out.
func parseStore(images, content string) store {
	st := store{images: map[string]string{}, manifests: map[string][]string{}, layers: map[string][]string{}, present: map[string]bool{}}
	type labels struct{ m, l []string }
	refs := map[string]labels{}
	for _, line := range strings.Split(content, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "sha256:") {
			continue
		}
		st.present[f[0]] = true
		var ls labels
		for _, kv := range strings.Split(f[len(f)-1], ",") {
			k, v, ok := strings.Cut(kv, "=")
			switch {
			case !ok:
			case strings.HasPrefix(k, manifestLabel):
				ls.m = append(ls.m, v)
			case strings.HasPrefix(k, layerLabel):
				ls.l = append(ls.l, v)
			}
		}
		refs[f[0]] = ls
	}
	for d, ls := range refs {
		for _, m := range ls.m {
			if st.present[m] {
				st.manifests[d] = append(st.manifests[d], m)
			}
		}
		if len(ls.l) > 0 {
			st.layers[d] = ls.l
		}
	}
	for _, line := range strings.Split(images, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] == "REF" || strings.HasPrefix(f[0], "sha256:") || strings.HasPrefix(f[0], "time=") {
			continue
		}
		for _, x := range f[1:] {
			if strings.HasPrefix(x, "sha256:") {
				st.images[f[0]] = x
				break
			}
		}
	}
	return st
}

// manifestsOf returns the manifests an image's target stands for: itself,
// or an index's manifests that the store has.
func (st store) manifestsOf(target string) []string {
	if ms, ok := st.manifests[target]; ok {
		return ms
	}
	if _, ok := st.layers[target]; ok {
		return []string{target}
	}
	return nil
}

// allLayers returns every layer of every named image, sorted, each once.
func (st store) allLayers() []string {
	seen := map[string]bool{}
	for _, target := range st.images {
		for _, m := range st.manifestsOf(target) {
			for _, l := range st.layers[m] {
				if st.present[l] {
					seen[l] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

type plan struct {
	unpack []string          // sorted
	packed map[string]string // and why
}

// plan sorts the named images into those to unpack (every layer of every
// manifest present and listed clean) and those to leave packed.
func (st store) plan(scan map[string]string) plan {
	p := plan{packed: map[string]string{}}
	for _, ref := range slices.Sorted(maps.Keys(st.images)) {
		ms := st.manifestsOf(st.images[ref])
		why := ""
		if len(ms) == 0 {
			why = "no manifest with layers in the store"
		}
		for _, m := range ms {
			for _, l := range st.layers[m] {
				switch {
				case why != "":
				case !st.present[l]:
					why = "layer " + short(l) + " is not in the store"
				case scan[l] == "deletes":
					why = "layer " + short(l) + " deletes files, which a committed image cannot carry unpacked"
				case scan[l] != "clean":
					why = "layer " + short(l) + " could not be listed"
				}
			}
		}
		if why != "" {
			p.packed[ref] = why
		} else {
			p.unpack = append(p.unpack, ref)
		}
	}
	return p
}

// removable returns the layers whose every manifest is known to be
// unpacked: the target of an unpacked image, or the one manifest of an
// unpacked image's index. A layer that a packed image also uses stays.
func (st store) removable(unpacked []string) []string {
	done := map[string]bool{}
	for _, ref := range unpacked {
		target := st.images[ref]
		if _, ok := st.layers[target]; ok {
			done[target] = true
		} else if ms := st.manifests[target]; len(ms) == 1 {
			done[ms[0]] = true
		}
	}
	keep, drop := map[string]bool{}, map[string]bool{}
	for m, ls := range st.layers {
		for _, l := range ls {
			if !st.present[l] {
				continue
			}
			if done[m] {
				drop[l] = true
			} else {
				keep[l] = true
			}
		}
	}
	for l := range keep {
		delete(drop, l)
	}
	return slices.Sorted(maps.Keys(drop))
}

// parseScan reads scanLayers' lines.
func parseScan(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[0], "sha256:") {
			m[f[0]] = f[1]
		}
	}
	return m
}

// parseMounts reads mountEach's lines.
func parseMounts(out string) (done map[string]bool, failed map[string]string) {
	done, failed = map[string]bool{}, map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if ref, ok := strings.CutPrefix(line, "unpacked "); ok {
			done[strings.TrimSpace(ref)] = true
		} else if rest, ok := strings.CutPrefix(line, "failed "); ok {
			ref, why, _ := strings.Cut(rest, ": ")
			failed[ref] = strings.TrimSpace(why)
		}
	}
	return done, failed
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
