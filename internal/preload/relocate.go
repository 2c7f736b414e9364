package preload

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// LayersDir is where Relocate moves the unpacked layers: outside /var, on
// the node image's own layers.
const LayersDir = "/kind/kubevirtci-preload/layers"

// SnapshotsDir is the overlayfs snapshotter's snapshots in a node's
// containerd (every containerd kind's node images have keeps them there).
const SnapshotsDir = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots"

// Relocate moves the unpacked layers of the containerd in container (the
// files of each committed snapshot of the overlayfs snapshotter) out of
// /var to LayersDir, and leaves a symbolic link to each in its place.
//
// kind runs every node with /var on a volume of its own, which the engine
// fills with a copy of the image's /var when it creates the node, and
// deletes with it. Unpacked layers under /var are therefore copied into
// every node at each cluster-up (several hundred megabytes per node) and
// deleted at each cluster-down. Outside /var they stay in the image's
// layers, which every node shares and no cluster-up copies. They are only
// ever read there: containerd mounts them as the lower layers of its
// overlayfs mounts (the kernel follows the link), and each container's
// writes go to its own upper layer, which containerd makes on /var as
// before. Removing such an image (the kubelet's image collection) removes
// the link.
//
// It moves nothing when a snapshot is not committed (its files are a
// container's upper layer, which must stay on /var), and it moves them all
// back when one of refs (the unpacked images) cannot be mounted through
// the links afterwards: an engine whose storage is already an overlayfs
// nested in another cannot take one more level. Either way the layers
// stay usable; Relocated says what was done.
func Relocate(ctx context.Context, e Execer, container string, refs []string) (Relocated, error) {
	return relocate(ctx, e, container, SnapshotsDir, LayersDir, refs)
}

// relocate is Relocate with the snapshots' and the layers' directories.
func relocate(ctx context.Context, e Execer, container, snaps, dest string, refs []string) (Relocated, error) {
	out, err := e.Exec(ctx, container, "sh", "-c", moveLayers, "sh", snaps, dest)
	if err != nil {
		return Relocated{}, fmt.Errorf("moving the unpacked layers out of /var: %w", err)
	}
	r, err := parseRelocate(string(out))
	if err != nil || r.Moved == 0 {
		return r, err
	}
	out, err = e.Exec(ctx, container, append([]string{"sh", "-c", mountEach, "sh"}, refs...)...)
	if err != nil {
		return r, fmt.Errorf("mounting the images through the moved layers: %w", err)
	}
	_, failed := parseMounts(string(out))
	for _, ref := range refs {
		if why, ok := failed[ref]; ok {
			if _, err := e.Exec(ctx, container, "sh", "-c", moveBack, "sh", snaps, dest); err != nil {
				return r, fmt.Errorf("moving the unpacked layers back into /var: %w", err)
			}
			r = Relocated{Kept: ref + " could not be mounted through the moved layers: " + why}
			break
		}
	}
	// containerd 2 leaves a removed snapshot's directory (the mounts')
	// on /var until the next collection.
	if _, err := e.Exec(ctx, container, "sh", "-c", collect); err != nil {
		return r, fmt.Errorf("collecting the mounts' snapshots: %w", err)
	}
	return r, nil
}

// Relocated is what Relocate did: Moved layers moved, or why none was
// (Kept).
type Relocated struct {
	Moved int
	Kept  string
}

func (r Relocated) String() string {
	if r.Kept != "" {
		return "unpacked layers kept in /var (" + r.Kept + ")"
	}
	return fmt.Sprintf("%d unpacked layers moved out of /var", r.Moved)
}

// backFn defines back, which moves every layer that a snapshot of $snaps
// links to in $dest back to its snapshot.
const backFn = `back() {
	for d in "$snaps"/*; do
		t=$(readlink "$d/fs") || continue
		case $t in "$dest"/*) rm -f "$d/fs" && mv "$t" "$d/fs" ;; esac
	done
	rmdir "$dest" "${dest%/*}" 2>/dev/null
}
`

// moveLayers is Relocate's move: $1 the snapshots, $2 where to move their
// files. It prints "moved N" or "kept WHY" (everything moved back).
const moveLayers = `set -u
snaps=$1 dest=$2
` + backFn + `if [ ! -d "$snaps" ]; then
	echo "kept no overlayfs snapshots at $snaps"
	exit 0
fi
if ! nss=$(ctr namespaces ls -q 2>/dev/null); then
	echo "kept the namespaces could not be listed"
	exit 0
fi
for n in $nss; do
	# KEY PARENT KIND, the parent empty for a first layer.
	if ! list=$(ctr --namespace="$n" snapshots ls 2>/dev/null); then
		echo "kept the snapshots of namespace $n could not be listed"
		exit 0
	fi
	if echo "$list" | awk 'NR > 1 && $NF != "Committed" { found = 1 } END { exit !found }'; then
		echo "kept a snapshot of namespace $n is not committed"
		exit 0
	fi
done
mkdir -p "$dest"
n=0
for d in "$snaps"/*; do
	id=${d##*/}
	if [ -L "$d/fs" ] || [ ! -d "$d/fs" ]; then
		continue
	fi
	if ! err=$(mv "$d/fs" "$dest/$id" 2>&1 && ln -s "$dest/$id" "$d/fs" 2>&1); then
		[ -e "$d/fs" ] || mv "$dest/$id" "$d/fs"
		back
		echo "kept moving snapshot $id failed: $err" | tr '\n' ' '
		echo
		exit 0
	fi
	n=$((n + 1))
done
echo "moved $n"
`

// moveBack moves every layer moveLayers moved ($1 the snapshots, $2 where
// it moved them) back.
const moveBack = `set -u
snaps=$1 dest=$2
` + backFn + `back
`

// parseRelocate reads moveLayers' last line.
func parseRelocate(out string) (Relocated, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if why, ok := strings.CutPrefix(last, "kept "); ok {
		return Relocated{Kept: strings.TrimSpace(why)}, nil
	}
	if n, ok := strings.CutPrefix(last, "moved "); ok {
		if moved, err := strconv.Atoi(n); err == nil {
			return Relocated{Moved: moved}, nil
		}
	}
	return Relocated{}, fmt.Errorf("moving the unpacked layers out of /var: no word of the outcome in %q", out)
}
