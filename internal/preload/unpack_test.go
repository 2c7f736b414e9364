package preload

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// The lists as containerd 2's ctr prints them (spaces between columns, the
// age in words), with a multi-image index as kind's node image builds
// leave one (import-...), the CRI plugin's digest-named aliases, a
// single-manifest index, and a blob the labels name but the store lacks.
const imagesLs = `REF                     TYPE                                                 DIGEST     SIZE      PLATFORMS   LABELS
import-2026-12-05@sha256:ix application/vnd.oci.image.index.v1+json      sha256:ix  52.7 MiB  linux/amd64 io.cri-containerd.image=managed,io.cri-containerd.pinned=pinned
registry.k8s.io/etcd:3.6 application/vnd.docker.distribution.manifest.v2+json sha256:m1 10.4 MiB  linux/amd64 io.cri-containerd.image=managed,io.cri-containerd.pinned=pinned
localhost/whtest:1      application/vnd.oci.image.manifest.v1+json           sha256:m2  20.8 KiB  linux/amd64 io.cri-containerd.image=managed
localhost/multi:1       application/vnd.oci.image.index.v1+json              sha256:i3  5 MiB     linux/amd64 -
localhost/zstd:1        application/vnd.oci.image.manifest.v1+json           sha256:m4  5 MiB     linux/amd64 -
sha256:c1               application/vnd.docker.distribution.manifest.v2+json sha256:m1  10.4 MiB  linux/amd64 io.cri-containerd.image=managed
`

const contentLs = `DIGEST		SIZE	AGE		LABELS
sha256:ix	2.7kB	3 hours		containerd.io/gc.ref.content.m.0=sha256:m1,containerd.io/gc.ref.content.m.1=sha256:m2
sha256:m1	588B	3 hours		containerd.io/gc.ref.content.config=sha256:c1,containerd.io/gc.ref.content.l.0=sha256:base,containerd.io/gc.ref.content.l.1=sha256:etcd
sha256:m2	500B	Less than a second	containerd.io/gc.ref.content.config=sha256:c2,containerd.io/gc.ref.content.l.0=sha256:base,containerd.io/gc.ref.content.l.1=sha256:rm
sha256:i3	400B	2 minutes	containerd.io/gc.ref.content.m.0=sha256:m3,containerd.io/gc.ref.content.m.1=sha256:m3arm
sha256:m3	500B	2 minutes	containerd.io/gc.ref.content.config=sha256:c3,containerd.io/gc.ref.content.l.0=sha256:multi
sha256:m4	500B	2 minutes	containerd.io/gc.ref.content.config=sha256:c4,containerd.io/gc.ref.content.l.0=sha256:zst
sha256:c1	530B	3 hours		-
sha256:base	1MB	3 hours		-
sha256:etcd	9MB	3 hours		-
sha256:rm	1kB	3 hours		-
sha256:multi	1kB	3 hours		-
sha256:zst	1kB	3 hours		-
`

func TestParseStore(t *testing.T) {
	st := parseStore(imagesLs, contentLs)
	wantImages := map[string]string{
		"import-2026-12-05@sha256:ix": "sha256:ix",
		"registry.k8s.io/etcd:3.6":    "sha256:m1",
		"localhost/whtest:1":          "sha256:m2",
		"localhost/multi:1":           "sha256:i3",
		"localhost/zstd:1":            "sha256:m4",
	}
	if !reflect.DeepEqual(st.images, wantImages) {
		t.Errorf("images %v, want %v", st.images, wantImages)
	}
	// m3arm is named by the index but not in the store: not a manifest of it.
	if got := st.manifestsOf("sha256:i3"); !reflect.DeepEqual(got, []string{"sha256:m3"}) {
		t.Errorf("manifests of i3: %v, want [sha256:m3]", got)
	}
	if got := st.manifestsOf("sha256:m2"); !reflect.DeepEqual(got, []string{"sha256:m2"}) {
		t.Errorf("manifests of m2: %v", got)
	}
	want := []string{"sha256:base", "sha256:etcd", "sha256:multi", "sha256:rm", "sha256:zst"}
	if got := st.allLayers(); !reflect.DeepEqual(got, want) {
		t.Errorf("layers %v, want %v", got, want)
	}
}

// fakeExec plays the container's containerd: the two lists, the layers'
// listing (scan: digest -> answer), the mounts (failing for fail) and the
// blobs' removal.
type fakeExec struct {
	images, content string
	scan            map[string]string
	fail            map[string]string
	errOn           string
	calls           [][]string
	removed         []string
}

func (f *fakeExec) Exec(_ context.Context, container string, args ...string) ([]byte, error) {
	if container != "builder" {
		return nil, fmt.Errorf("exec in %q", container)
	}
	f.calls = append(f.calls, args)
	cmd := strings.Join(args, " ")
	if f.errOn != "" && strings.Contains(cmd, f.errOn) {
		return nil, errors.New("exit status 1")
	}
	switch {
	case cmd == "ctr --namespace=k8s.io images ls":
		return []byte(f.images), nil
	case cmd == "ctr --namespace=k8s.io content ls":
		return []byte(f.content), nil
	case len(args) > 3 && args[2] == scanLayers:
		var out strings.Builder
		for _, d := range args[4:] {
			if a, ok := f.scan[d]; ok {
				fmt.Fprintf(&out, "%s %s\n", d, a)
			} else {
				fmt.Fprintf(&out, "%s clean\n", d)
			}
		}
		return []byte(out.String()), nil
	case len(args) > 3 && args[2] == mountEach:
		var out strings.Builder
		for _, ref := range args[4:] {
			if why, ok := f.fail[ref]; ok {
				fmt.Fprintf(&out, "failed %s: %s\n", ref, why)
			} else {
				fmt.Fprintf(&out, "unpacked %s\n", ref)
			}
		}
		return []byte(out.String()), nil
	case len(args) > 3 && args[2] == removeBlobs:
		f.removed = append(f.removed, args[4:]...)
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected command %q", cmd)
}

// An image with a layer that deletes files stays packed, with the reason;
// so does one whose layer cannot be listed (zstd), and the import index,
// which names whtest's manifest among its own. The others are unpacked.
// Only the layers that no packed image uses lose their blobs: base stays
// for whtest.
func TestUnpackLeavesWhatDeletesPacked(t *testing.T) {
	f := &fakeExec{images: imagesLs, content: contentLs, scan: map[string]string{"sha256:rm": "deletes", "sha256:zst": "unreadable"}}
	res, err := Unpack(context.Background(), f, "builder")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"localhost/multi:1", "registry.k8s.io/etcd:3.6"}; !reflect.DeepEqual(res.Unpacked, want) {
		t.Errorf("unpacked %v, want %v", res.Unpacked, want)
	}
	for ref, want := range map[string]string{
		"localhost/whtest:1":          "layer sha256:rm deletes files",
		"import-2026-12-05@sha256:ix": "layer sha256:rm deletes files",
		"localhost/zstd:1":            "layer sha256:zst could not be listed",
	} {
		if !strings.HasPrefix(res.Packed[ref], want) {
			t.Errorf("%s left packed for %q, want %q", ref, res.Packed[ref], want)
		}
	}
	if len(res.Packed) != 3 {
		t.Errorf("packed %v, want 3 images", res.Packed)
	}
	// base is whtest's too; etcd and multi only the unpacked images'.
	if want := []string{"sha256:etcd", "sha256:multi"}; !reflect.DeepEqual(f.removed, want) {
		t.Errorf("removed %v, want %v", f.removed, want)
	}
	if res.Removed != 2 {
		t.Errorf("Removed %d, want 2", res.Removed)
	}
	s := res.String()
	for _, want := range []string{"2 images unpacked, 2 layer blobs removed", "localhost/whtest:1 left packed (layer sha256:rm deletes files"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary %q lacks %q", s, want)
		}
	}
}

// Every layer clean: every image is unpacked, every layer's blob removed.
func TestUnpackEverythingClean(t *testing.T) {
	f := &fakeExec{images: imagesLs, content: contentLs}
	res, err := Unpack(context.Background(), f, "builder")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Unpacked) != 5 || len(res.Packed) != 0 {
		t.Errorf("unpacked %v, packed %v; want all 5 unpacked", res.Unpacked, res.Packed)
	}
	if want := []string{"sha256:base", "sha256:etcd", "sha256:multi", "sha256:rm", "sha256:zst"}; !reflect.DeepEqual(f.removed, want) {
		t.Errorf("removed %v, want %v", f.removed, want)
	}
}

// An unpack that fails (an overlayfs that does not nest here) leaves that
// image packed and its layers' blobs in place; the preload goes on.
func TestUnpackFailureLeavesThatImagePacked(t *testing.T) {
	f := &fakeExec{images: imagesLs, content: contentLs, fail: map[string]string{"registry.k8s.io/etcd:3.6": "failed to convert whiteout file: operation not permitted"}}
	res, err := Unpack(context.Background(), f, "builder")
	if err != nil {
		t.Fatal(err)
	}
	if why := res.Packed["registry.k8s.io/etcd:3.6"]; !strings.Contains(why, "operation not permitted") {
		t.Errorf("etcd left packed for %q, want the unpack's error", why)
	}
	for _, l := range f.removed {
		if l == "sha256:etcd" || l == "sha256:base" {
			t.Errorf("removed %s, a layer of the packed etcd image", l)
		}
	}
}

// Nothing to unpack, nothing to remove: no command past the lists.
func TestUnpackEmptyStore(t *testing.T) {
	f := &fakeExec{images: "REF TYPE DIGEST SIZE PLATFORMS LABELS\n", content: "DIGEST SIZE AGE LABELS\n"}
	res, err := Unpack(context.Background(), f, "builder")
	if err != nil || len(res.Unpacked) != 0 || len(f.calls) != 2 {
		t.Errorf("res %v, err %v, calls %v; want two lists and nothing else", res, err, f.calls)
	}
}

// A failing command is named in the error.
func TestUnpackErrors(t *testing.T) {
	for on, want := range map[string]string{
		"images ls":   "listing the images",
		"content ls":  "listing the content",
		"for d; do":   "listing the layers' files",
		"for ref; do": "unpacking the images",
		"leases":      "removing the unpacked layers' blobs",
	} {
		f := &fakeExec{images: imagesLs, content: contentLs, errOn: on}
		if _, err := Unpack(context.Background(), f, "builder"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("failing %q: %v, want %q", on, err, want)
		}
	}
}
