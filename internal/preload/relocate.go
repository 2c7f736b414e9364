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
	out, err := e.Exec(ctx, container, append([]string{"sh", "-c", relocate, "sh", SnapshotsDir, LayersDir}, refs...)...)
	if err != nil {
		return Relocated{}, fmt.Errorf("moving the unpacked layers out of /var: %w", err)
	}
	return parseRelocate(string(out))
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

// relocate is Relocate's script: $1 the snapshots, $2 where to move their
// files, the rest the images to mount afterwards. It prints "moved N" or
// "kept WHY". The mounts' snapshots are collected at the end: containerd
// 2 leaves a removed snapshot's directory on /var until then.
const relocate = `set -u
snaps=$1 dest=$2
shift 2
if [ ! -d "$snaps" ]; then
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
moved=""
back() {
	for id in $moved; do
		rm -f "$snaps/$id/fs" && mv "$dest/$id" "$snaps/$id/fs"
	done
	rmdir "$dest" "${dest%/*}" 2>/dev/null
}
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
	moved="$moved $id"
done
m=$(mktemp -d)
i=0
for ref; do
	i=$((i + 1))
	mkdir "$m/$i"
	if ! err=$(ctr --namespace=k8s.io images mount "$ref" "$m/$i" 2>&1 >/dev/null); then
		back
		echo "kept $ref could not be mounted through the moved layers: $(echo "$err" | grep -v 'level=warning')" | tr '\n' ' '
		echo
		exit 0
	fi
	ls -A "$m/$i" >/dev/null
	ctr --namespace=k8s.io images unmount --rm "$m/$i" >/dev/null 2>&1 || true
done
rm -rf "$m"
` + collect + `echo "moved $(echo $moved | wc -w)"
`

// parseRelocate reads relocate's last line.
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
