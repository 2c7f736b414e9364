package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
	"github.com/kubevirt/kubevirtci-go/internal/cri"
	"github.com/kubevirt/kubevirtci-go/internal/preload"
)

// TestPreloadKeepsDeletions: an image whose layers delete files (a file
// removed, a directory replaced) runs in the nodes as it was built, when
// it reaches them preloaded into kind-1.22-sriov's node image. See
// checkPreloadKeepsDeletions; TestScenarioKindSRIOV checks kind-sriov's.
func TestPreloadKeepsDeletions(t *testing.T) {
	requireE2E(t)
	checkPreloadKeepsDeletions(t, nodeImage)
}

const (
	deletesImage    = "localhost/kubevirtci-e2e-deletes:1"
	emptyLayerImage = "localhost/kubevirtci-e2e-empty-layer:1"
)

// checkPreloadKeepsDeletions makes a preload of node with deletesImage (a
// first layer with /a, /b and /d/x; a second that deletes /a, makes /d
// opaque and adds /d/y) and emptyLayerImage (/a and /b, then a layer with
// no file, as some builders write for ENV or WORKDIR), as a cluster-up
// makes one with the component images, and runs it as kind runs a node
// (/var a volume of its own): deletesImage is there, whole and packed, and
// its files are b and d/y only; emptyLayerImage and the node image's own
// images are unpacked; no blob is left that the store does not list.
func checkPreloadKeepsDeletions(t *testing.T, node string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	for ref, layers := range map[string][][]entry{
		deletesImage: {
			{{"a", "a\n"}, {"b", "b\n"}, {"d/", ""}, {"d/x", "x\n"}},
			{{".wh.a", ""}, {"d/", ""}, {"d/.wh..wh..opq", ""}, {"d/y", "y\n"}},
		},
		emptyLayerImage: {{{"a", "a\n"}, {"b", "b\n"}}, {}},
	} {
		archive := filepath.Join(dir, "image.tar")
		writeImage(t, archive, ref, layers...)
		dockerT(t, "load", "-i", archive)
	}
	ref := "localhost/kubevirtci-e2e-preload:deletes"
	name := "kubevirtci-e2e-preload-node"
	t.Cleanup(func() {
		docker(ctx, "rm", "--force", "--volumes", name)
		docker(ctx, "rmi", ref, deletesImage, emptyLayerImage)
	})
	start := time.Now()
	res, err := preload.Make(ctx, cri.CLI{Bin: "docker", Run: cmdrun.Exec{}}, preload.Spec{
		NodeImage: node, Ref: ref, Images: []string{deletesImage, emptyLayerImage},
		Builder: "kubevirtci-e2e-preload-builder", BuilderLabels: map[string]string{"io.kubevirtci.e2e": "preload"},
		Labels: map[string]string{"io.kubevirtci.e2e": "preload"},
	})
	if err != nil {
		t.Fatalf("preloading %s into %s: %v", deletesImage, node, err)
	}
	t.Logf("preload of %s made in %s: %s", node, time.Since(start).Round(100*time.Millisecond), res)
	if why := res.Packed[deletesImage]; !strings.Contains(why, "deletes files") {
		t.Errorf("%s left packed for %q, want: its layer deletes files", deletesImage, why)
	}
	if !slices.Contains(res.Unpacked, emptyLayerImage) {
		t.Errorf("%s left packed for %q, want it unpacked (an empty layer deletes nothing)", emptyLayerImage, res.Packed[emptyLayerImage])
	}
	if len(res.Unpacked) < 2 {
		t.Errorf("none of the node image's own images unpacked: %s", res)
	}
	if res.Layers.Kept != "" || res.Layers.Moved == 0 {
		t.Errorf("unpacked layers not moved out of /var: %s", res)
	}

	dockerT(t, "run", "--detach", "--name", name, "--privileged", "--tmpfs", "/run", "--tmpfs", "/tmp",
		"--volume", "/var", "--entrypoint", "containerd", ref)
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := docker(ctx, "exec", name, "ctr", "version"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("containerd in a container of %s did not answer: %v", ref, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctr := func(args ...string) string {
		t.Helper()
		out, err := docker(ctx, append([]string{"exec", name, "ctr", "--namespace=k8s.io"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	unpacked := map[string]string{}
	for _, line := range strings.Split(ctr("images", "check"), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] == "REF" || strings.HasPrefix(f[0], "sha256:") || strings.HasPrefix(f[0], "time=") {
			continue
		}
		unpacked[f[0]] = f[len(f)-1]
	}
	if unpacked[deletesImage] != "false" {
		t.Errorf("%s: unpacked %q, want false (left packed)", deletesImage, unpacked[deletesImage])
	}
	for _, r := range res.Unpacked {
		if unpacked[r] != "true" {
			t.Errorf("%s: unpacked %q, want true", r, unpacked[r])
		}
	}

	// The unpacked layers are in the image, outside the node's /var, each
	// linked from its snapshot (the mounts below go through them).
	if out, err := docker(ctx, "exec", name, "sh", "-c", layersOutsideVar, "sh", preload.SnapshotsDir, preload.LayersDir); err != nil {
		t.Error(err)
	} else if out != fmt.Sprintf("real 0 links %d unlinked 0", res.Layers.Moved) {
		t.Errorf("in the node: %s; want no snapshot's files on /var, and %d links, one to each moved layer", out, res.Layers.Moved)
	}

	// Unpacked now, on the node's /var, as the kubelet's first container
	// of it would.
	for i, c := range []struct{ image, want string }{{deletesImage, "./b ./d ./d/y"}, {emptyLayerImage, "./a ./b"}} {
		// A mount point of its own: containerd 2's ctr keeps a record
		// of each target after the unmount.
		m := fmt.Sprintf("/tmp/m%d", i)
		out, err := docker(ctx, "exec", name, "sh", "-c", `set -e
mkdir `+m+`
ctr --namespace=k8s.io images mount `+c.image+` `+m+` >/dev/null
echo "files: $(cd `+m+` && find . -mindepth 1 | sort | tr '\n' ' ')"
ctr --namespace=k8s.io images unmount --rm `+m+` >/dev/null`)
		if err != nil {
			t.Fatal(err)
		}
		if got := filesLine(out); got != c.want {
			t.Errorf("%s in the node: files %q, want %q", c.image, got, c.want)
		}
	}

	listed := map[string]bool{}
	for _, d := range strings.Fields(ctr("content", "ls", "--quiet")) {
		listed[d] = true
	}
	files, err := docker(ctx, "exec", name, "ls", "/var/lib/containerd/io.containerd.content.v1.content/blobs/sha256")
	if err != nil {
		t.Fatal(err)
	}
	var orphans []string
	for _, f := range strings.Fields(files) {
		if !listed["sha256:"+f] {
			orphans = append(orphans, f)
		}
	}
	if len(orphans) > 0 {
		t.Errorf("%d blobs in the image's /var that its store does not list (removed, not collected): %v", len(orphans), orphans)
	}
}

// filesLine is what follows "files:" in out (which has containerd's
// warnings too).
func filesLine(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "files:"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return "(no files: line in: " + out + ")"
}

// entry is a file of an image layer; a name ending in / is a directory.
type entry struct{ name, data string }

// writeImage writes image ref with the given layers as `docker save` would.
func writeImage(t *testing.T, file, ref string, layerEntries ...[]entry) {
	t.Helper()
	layer := func(entries ...entry) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, e := range entries {
			h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
			if strings.HasSuffix(e.name, "/") {
				h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	var layers [][]byte
	for _, es := range layerEntries {
		layers = append(layers, layer(es...))
	}
	var diffIDs, names []string
	files := map[string][]byte{}
	for i, l := range layers {
		diffIDs = append(diffIDs, fmt.Sprintf("sha256:%x", sha256.Sum256(l)))
		names = append(names, fmt.Sprintf("layer%d.tar", i))
		files[names[i]] = l
	}
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "config": map[string]any{"Cmd": []string{"/b"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		t.Fatal(err)
	}
	files["config.json"] = config
	manifest, err := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{ref}, "Layers": names}})
	if err != nil {
		t.Fatal(err)
	}
	files["manifest.json"] = manifest
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range append(names, "config.json", "manifest.json") {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
