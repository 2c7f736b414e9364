package imagesync

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const kib = 1024

func engineOptions(reg *testRegistry, eng *fakeEngine) Options {
	log, _ := logger()
	return Options{CLI: "docker", Runner: eng, Registry: reg.host, Transport: reg.rt, Log: log}
}

func byName(t *testing.T, res *Result) map[string]Pushed {
	t.Helper()
	m := map[string]Pushed{}
	for _, p := range res.Images {
		m[p.Name+":"+p.Tag] = p
	}
	return m
}

// The engine's images under the prefix with the tag are pushed, the others
// are not; a second sync sends nothing and exports nothing.
func TestSyncEngineImages(t *testing.T) {
	reg := newTestRegistry(t)
	eng := newFakeEngine(t)
	api := randomImage(t, 300*kib, 2)
	handler := randomImage(t, 200*kib, 3)
	eng.addImage("kubevirt/virt-api:devel", api)
	eng.addImage("kubevirt/virt-handler:devel", handler)
	eng.addImage("kubevirt/virt-api:v1.0.0", randomImage(t, kib, 1))                  // other tag
	eng.addImage("quay.io/kubevirt/virt-api:devel", randomImage(t, kib, 1))           // other host
	eng.addImage("example/virt-controller:devel", randomImage(t, kib, 1))             // other prefix
	eng.addImage("localhost/kubevirt/virt-launcher:devel", randomImage(t, 10*kib, 1)) // podman's name for a local build

	o := engineOptions(reg, eng) // no cache: the engine ID is compared with the config digest
	res, err := Sync(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	got := byName(t, res)
	if len(got) != 3 || got["virt-api:devel"].Name == "" || got["virt-handler:devel"].Name == "" || got["virt-launcher:devel"].Name == "" {
		t.Fatalf("pushed %v, want virt-api, virt-handler, virt-launcher (devel)", got)
	}
	sent, _ := reg.rt.reset()
	if sent < 900*kib {
		t.Errorf("first sync sent %d bytes through the transport, want at least the 1.2 MiB of layers", sent)
	}
	if res.Sent() != sent {
		t.Errorf("images report %d bytes sent, the transport saw %d", res.Sent(), sent)
	}
	for k, p := range got {
		// digest pinning: the digest reported is the one the registry serves under the tag
		if d := reg.digestOf(t, "kubevirt/"+k); d != p.Digest {
			t.Errorf("%s: reported digest %s, registry has %s", k, p.Digest, d)
		}
		want := "registry:5000/kubevirt/" + p.Name + "@" + p.Digest.String()
		if p.ClusterRef != want || p.HostRef != reg.host+"/kubevirt/"+k {
			t.Errorf("%s: refs %s %s, want %s and %s/kubevirt/%s", k, p.HostRef, p.ClusterRef, want, reg.host, k)
		}
		if p.Unchanged || !p.Exported || p.Sent == 0 {
			t.Errorf("%s: first push %+v", k, p)
		}
	}
	// The config is kept byte for byte: the pushed image's config digest is the engine's ID.
	img, err := remote.Image(reg.ref(t, "kubevirt/virt-api:devel"))
	if err != nil {
		t.Fatal(err)
	}
	if cn, _ := img.ConfigName(); cn != mustConfigName(t, api) {
		t.Errorf("pushed config %s, engine ID %s", cn, mustConfigName(t, api))
	}
	// The content is the engine's: same uncompressed layers.
	wantDiffs, _ := api.ConfigFile()
	gotCfg, _ := img.ConfigFile()
	if len(gotCfg.RootFS.DiffIDs) != 2 || gotCfg.RootFS.DiffIDs[1] != wantDiffs.RootFS.DiffIDs[1] {
		t.Errorf("pushed diff IDs %v, want %v", gotCfg.RootFS.DiffIDs, wantDiffs.RootFS.DiffIDs)
	}
	savesFirst := eng.saves()
	if savesFirst != 3 {
		t.Errorf("first sync exported %d images, want 3: %v", savesFirst, eng.Commands())
	}

	res2, err := Sync(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	sent, reqs := reg.rt.reset()
	if sent != 0 {
		t.Errorf("second sync sent %d bytes, want 0 (requests %v)", sent, reqs)
	}
	if reqs["PUT"]+reqs["PATCH"]+reqs["POST"] != 0 {
		t.Errorf("second sync wrote to the registry: %v", reqs)
	}
	if eng.saves() != savesFirst {
		t.Errorf("second sync exported images again: %v", eng.Commands())
	}
	for k, p := range byName(t, res2) {
		if !p.Unchanged || p.Exported || p.Sent != 0 || p.Skipped != got[k].Size || p.Digest != got[k].Digest {
			t.Errorf("%s: second sync %+v, first %+v", k, p, got[k])
		}
	}
}

func mustConfigName(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A rebuilt image that shares its base layer with what the registry holds
// sends only the new layer; with the cache, the base layer is not even
// compressed again. The engine is asked for its archive only for the
// rebuilt image.
func TestSyncRebuiltImage(t *testing.T) {
	reg := newTestRegistry(t)
	eng := newFakeEngine(t)
	base := randomLayer(t, 512*kib)
	eng.addImage("kubevirt/virt-api:devel", imageWith(t, base, randomLayer(t, 64*kib)))
	o := engineOptions(reg, eng)
	o.CacheFile = filepath.Join(t.TempDir(), "cache.json")
	if _, err := Sync(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	reg.rt.reset()

	var mu sync.Mutex
	var compressed []v1.Hash
	testHookCompress = func(d v1.Hash) { mu.Lock(); compressed = append(compressed, d); mu.Unlock() }
	defer func() { testHookCompress = nil }()

	top := randomLayer(t, 64*kib)
	rebuilt := imageWith(t, base, top)
	eng.addImage("kubevirt/virt-api:devel", rebuilt)
	res, err := Sync(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	sent, _ := reg.rt.reset()
	topSize, _ := top.Size()
	if sent > topSize+8*kib || sent < topSize/2 {
		t.Errorf("rebuilt image sent %d bytes, want about the new layer (%d)", sent, topSize)
	}
	topDiff, _ := top.DiffID()
	if len(compressed) != 1 || compressed[0] != topDiff {
		t.Errorf("compressed %v, want only the new layer %s", compressed, topDiff)
	}
	if p := res.Images[0]; p.Unchanged || p.Digest != reg.digestOf(t, "kubevirt/virt-api:devel") {
		t.Errorf("rebuilt image: %+v", p)
	}
	if eng.saves() != 2 {
		t.Errorf("want 2 exports in all, got %v", eng.Commands())
	}
}

// Without the cache, the same image still sends nothing the second time:
// layers are compressed deterministically, so manifests and blobs match.
func TestSyncWithoutCacheIsStable(t *testing.T) {
	reg := newTestRegistry(t)
	eng := newFakeEngine(t)
	img := randomImage(t, 256*kib, 2)
	// An engine whose IDs are not config digests (docker's containerd
	// store): the image must be exported and compared by manifest digest.
	eng.add("kubevirt/virt-api:devel", "sha256:"+strings.Repeat("ab", 32), func(p string) { writeDockerSave(t, p, img, "kubevirt/virt-api:devel") })
	o := engineOptions(reg, eng)
	r1, err := Sync(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	reg.rt.reset()
	r2, err := Sync(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sent, reqs := reg.rt.reset(); sent != 0 {
		t.Errorf("second sync sent %d bytes (%v)", sent, reqs)
	}
	if !r2.Images[0].Unchanged || !r2.Images[0].Exported || r2.Images[0].Digest != r1.Images[0].Digest {
		t.Errorf("second sync %+v, first %+v", r2.Images[0], r1.Images[0])
	}

	// With the cache, the ID is remembered with the digest it was pushed
	// as: the third sync does not export, the fourth neither.
	o.CacheFile = filepath.Join(t.TempDir(), "cache.json")
	if _, err := Sync(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	saves := eng.saves()
	r4, err := Sync(context.Background(), o)
	must(t, err)
	if eng.saves() != saves || r4.Images[0].Exported || !r4.Images[0].Unchanged {
		t.Errorf("with the cache the unchanged image was exported again: %+v", r4.Images[0])
	}
	// A different ID under the same tag is exported again.
	eng.add("kubevirt/virt-api:devel", "sha256:"+strings.Repeat("ef", 32), func(p string) { writeDockerSave(t, p, img, "kubevirt/virt-api:devel") })
	if _, err := Sync(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if eng.saves() != saves+1 {
		t.Errorf("a new engine ID did not lead to an export: %v", eng.Commands())
	}
}

// Images that share a large layer are pushed at the same time; the layer
// goes over the wire once. Uploads are slowed down so that, without the
// coordination, every image would find the layer missing and send it.
func TestSyncSharedLayerSentOnce(t *testing.T) {
	reg := newTestRegistry(t)
	reg.rt.uploadDelay = 100 * time.Millisecond
	dir := filepath.Join(t.TempDir(), "images")
	lp, err := layout.Write(dir, empty.Index)
	must(t, err)
	shared := randomLayer(t, 1024*kib)
	for _, n := range []string{"a", "b", "c", "d"} {
		img := imageWith(t, shared, randomLayer(t, 16*kib))
		must(t, lp.AppendImage(img, layout.WithAnnotations(map[string]string{annotationRefName: "kubevirt/" + n + ":devel"})))
	}
	log, _ := logger()
	res, err := Sync(context.Background(), Options{Sources: []string{dir}, Registry: reg.host, Transport: reg.rt, Log: log, Jobs: 4})
	must(t, err)
	if len(res.Images) != 4 {
		t.Fatalf("pushed %d images", len(res.Images))
	}
	sent, _ := reg.rt.reset()
	sharedSize, _ := shared.Size()
	if sent > sharedSize+4*40*kib {
		t.Errorf("sent %d bytes for 4 images sharing a %d-byte layer: the shared layer went more than once", sent, sharedSize)
	}
}

// OCI layouts: an image named by a tag only (named after the folder), one
// with a full containerd name, and a multi-platform index.
func TestSyncOCILayout(t *testing.T) {
	reg := newTestRegistry(t)
	dir := filepath.Join(t.TempDir(), "virt-operator")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	op := randomImage(t, 100*kib, 2)
	ctl := randomImage(t, 100*kib, 1)
	idx, err := random.Index(50*kib, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	must(t, lp.AppendImage(op, layout.WithAnnotations(map[string]string{annotationRefName: "devel"})))
	must(t, lp.AppendImage(ctl, layout.WithAnnotations(map[string]string{annotationContainerdName: "docker.io/kubevirt/virt-controller:devel", annotationRefName: "devel"})))
	must(t, lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{annotationRefName: "quay.io/kubevirt/multi:v2"})))

	log, _ := logger()
	o := Options{Sources: []string{dir}, Registry: reg.host, Transport: reg.rt, Log: log}
	res, err := Sync(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	got := byName(t, res)
	wantDigest := map[string]v1.Hash{}
	wantDigest["virt-operator:devel"], _ = op.Digest()
	wantDigest["virt-controller:devel"], _ = ctl.Digest()
	wantDigest["multi:v2"], _ = idx.Digest()
	for k, d := range wantDigest {
		if got[k].Digest != d {
			t.Errorf("%s: pushed %s, want the layout's digest %s", k, got[k].Digest, d)
		}
		if rd := reg.digestOf(t, "kubevirt/"+k); rd != d {
			t.Errorf("%s: registry has %s, want %s", k, rd, d)
		}
	}
	// The index's children are there too.
	if _, err := remote.Index(reg.ref(t, "kubevirt/multi:v2")); err != nil {
		t.Errorf("index: %v", err)
	}
	reg.rt.reset()
	if _, err := Sync(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if sent, reqs := reg.rt.reset(); sent != 0 {
		t.Errorf("second sync sent %d bytes (%v)", sent, reqs)
	}
}

// Archives: go-containerregistry's tarball (compressed layers, used as
// they are), a docker save archive, and an OCI layout packed in a tar.
func TestSyncArchives(t *testing.T) {
	reg := newTestRegistry(t)
	tmp := t.TempDir()
	a := randomImage(t, 64*kib, 2)
	b := randomImage(t, 64*kib, 1)
	c := randomImage(t, 64*kib, 1)
	ggcr := filepath.Join(tmp, "a.tar")
	writeGGCRTarball(t, ggcr, "kubevirt/virt-a:devel", a)
	save := filepath.Join(tmp, "b.tar")
	writeDockerSave(t, save, b, "localhost:5000/kubevirt/virt-b:v1")
	ociDir := filepath.Join(tmp, "virt-c")
	lp, err := layout.Write(ociDir, empty.Index)
	must(t, err)
	must(t, lp.AppendImage(c))
	ociTar := filepath.Join(tmp, "virt-c.tar")
	tarFolder(t, ociDir, ociTar)

	log, _ := logger()
	res, err := Sync(context.Background(), Options{Sources: []string{ggcr, save, ociTar}, Registry: reg.host, Transport: reg.rt, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	got := byName(t, res)
	ad, _ := a.Digest()
	cd, _ := c.Digest()
	if got["virt-a:devel"].Digest != ad {
		t.Errorf("compressed archive: pushed %s, want the image's own digest %s", got["virt-a:devel"].Digest, ad)
	}
	if got["virt-c:devel"].Digest != cd {
		t.Errorf("OCI archive: pushed %s, want %s", got["virt-c:devel"].Digest, cd)
	}
	if p := got["virt-b:v1"]; p.Digest != reg.digestOf(t, "kubevirt/virt-b:v1") {
		t.Errorf("docker save archive: %+v", p)
	}
}

func tarFolder(t *testing.T, dir, file string) {
	t.Helper()
	f, err := os.Create(file)
	must(t, err)
	defer f.Close()
	tw := newTarWriter(f)
	must(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return tw.add(rel, b)
	}))
	must(t, tw.Close())
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSyncNoRegistry(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	eng := newFakeEngine(t)
	log, _ := logger()
	_, err = Sync(context.Background(), Options{CLI: "docker", Runner: eng, Registry: addr, Log: log})
	if err == nil || !strings.Contains(err.Error(), "make cluster-up") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("got %v, want a hint to run make cluster-up naming %s", err, addr)
	}
	if len(eng.Commands()) != 0 {
		t.Errorf("the engine was asked before the registry was checked: %v", eng.Commands())
	}
}

func TestSyncNotARegistry(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	log, _ := logger()
	_, err := Sync(context.Background(), Options{CLI: "docker", Runner: newFakeEngine(t), Registry: strings.TrimPrefix(srv.URL, "http://"), Log: log})
	if err == nil || !strings.Contains(err.Error(), "not an image registry") {
		t.Fatalf("got %v", err)
	}
}

func TestSyncRefusesNonLoopback(t *testing.T) {
	for _, r := range []string{"10.0.0.5:5000", "registry:5000", "example.com:5000", "localhost"} {
		_, err := Sync(context.Background(), Options{Sources: []string{"x"}, Registry: r})
		if err == nil {
			t.Errorf("%s: accepted", r)
		}
	}
	for _, r := range []string{"localhost:5000", "127.0.0.1:5001", "[::1]:5000", "127.1.2.3:80"} {
		if err := CheckLoopback(r); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
}

func TestSyncNoMatchingImage(t *testing.T) {
	reg := newTestRegistry(t)
	eng := newFakeEngine(t)
	eng.addImage("kubevirt/virt-api:latest", randomImage(t, kib, 1))
	eng.addImage("myorg/virt-handler:devel", randomImage(t, kib, 1))
	eng.addImage("busybox:1.36", randomImage(t, kib, 1))
	_, err := Sync(context.Background(), engineOptions(reg, eng))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"kubevirt/<name>:devel", "kubevirt/virt-api:latest", "myorg/virt-handler:devel", "DOCKER_PREFIX"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, "busybox") {
		t.Errorf("error lists unrelated images: %s", msg)
	}
}

func TestSyncDuplicateSource(t *testing.T) {
	reg := newTestRegistry(t)
	eng := newFakeEngine(t)
	eng.addImage("kubevirt/virt-api:devel", randomImage(t, kib, 1))
	f := filepath.Join(t.TempDir(), "x.tar")
	writeGGCRTarball(t, f, "kubevirt/virt-api:devel", randomImage(t, kib, 1))
	o := engineOptions(reg, eng)
	o.Sources = []string{f}
	_, err := Sync(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "two sources") {
		t.Fatalf("got %v", err)
	}
}

func TestSyncBadSource(t *testing.T) {
	reg := newTestRegistry(t)
	dir := t.TempDir()
	notTar := filepath.Join(dir, "notes.txt")
	must(t, os.WriteFile(notTar, []byte("hello"), 0o644))
	foreign := filepath.Join(dir, "foreign.tar")
	writeGGCRTarball(t, foreign, "quay.io/other/thing:v1", randomImage(t, kib, 1))
	for src, want := range map[string]string{
		filepath.Join(dir, "missing"): "does not exist",
		dir:                           "not an OCI image layout",
		notTar:                        "not an image tarball",
		foreign:                       "not under DOCKER_PREFIX=kubevirt",
	} {
		_, err := Sync(context.Background(), Options{Sources: []string{src}, Registry: reg.host})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "SYNC_SOURCES") {
			t.Errorf("%s: got %v, want %q", src, err, want)
		}
	}
}

func TestSyncSaveFails(t *testing.T) {
	reg := newTestRegistry(t)
	eng := newFakeEngine(t)
	eng.add("kubevirt/virt-api:devel", "sha256:"+strings.Repeat("cd", 32), func(string) {})
	// The archive writer writes nothing: the archive cannot be read.
	_, err := Sync(context.Background(), engineOptions(reg, eng))
	if err == nil || !strings.Contains(err.Error(), "kubevirt/virt-api:devel") {
		t.Fatalf("got %v", err)
	}
}

// fakeDeployer records what it is asked to apply and wait for.
type fakeDeployer struct {
	applied  []*unstructured.Unstructured
	timeout  time.Duration
	applyErr error
}

func (d *fakeDeployer) Apply(_ context.Context, objs []*unstructured.Unstructured) error {
	d.applied = objs
	return d.applyErr
}

func (d *fakeDeployer) Rollout(_ context.Context, objs []*unstructured.Unstructured, timeout time.Duration) error {
	d.timeout = timeout
	return nil
}

// The whole loop: engine images pushed, the manifests' references pinned
// to the digests the registry serves, applied, and waited for.
func TestSyncRollout(t *testing.T) {
	reg := newTestRegistry(t)
	eng := newFakeEngine(t)
	eng.addImage("kubevirt/virt-api:devel", randomImage(t, 32*kib, 1))
	eng.addImage("kubevirt/virt-handler:devel", randomImage(t, 32*kib, 1))
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "10-api.yaml"), []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: virt-api
spec:
  selector: {matchLabels: {app: virt-api}}
  template:
    metadata: {labels: {app: virt-api}}
    spec:
      containers:
      - name: virt-api
        image: kubevirt/virt-api:devel
---
apiVersion: v1
kind: ConfigMap
metadata: {name: notes, namespace: kubevirt}
data: {image: kubevirt/virt-api:devel}
`), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "20-handler.yml"), []byte(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: virt-handler, namespace: kubevirt}
spec:
  selector: {matchLabels: {app: virt-handler}}
  template:
    metadata: {labels: {app: virt-handler}}
    spec:
      initContainers:
      - {name: init, image: "REG/kubevirt/virt-handler:devel"}
      containers:
      - {name: virt-handler, image: "registry:5000/kubevirt/virt-handler:devel"}
      - {name: launcher, image: "kubevirt/virt-launcher:devel"}
`), 0o644))
	// The host-side registry as the manifest names it: the test registry's address.
	handlerYAML := filepath.Join(dir, "20-handler.yml")
	b, err := os.ReadFile(handlerYAML)
	must(t, err)
	must(t, os.WriteFile(handlerYAML, []byte(strings.ReplaceAll(string(b), "REG", reg.host)), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "README.md"), []byte("not a manifest"), 0o644))

	o := engineOptions(reg, eng)
	d := &fakeDeployer{}
	o.Manifests, o.Deployer, o.RolloutTimeout = []string{dir}, d, 42*time.Second
	o.Log, _ = logger()
	var logBuf strings.Builder
	o.Log.W = &syncWriter{w: &logBuf}
	res, err := Sync(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if d.timeout != 42*time.Second || len(d.applied) != 3 {
		t.Fatalf("deployer got %d objects, timeout %s", len(d.applied), d.timeout)
	}
	apiDigest := reg.digestOf(t, "kubevirt/virt-api:devel")
	handlerDigest := reg.digestOf(t, "kubevirt/virt-handler:devel")
	dep := d.applied[0]
	if dep.GetNamespace() != "default" {
		t.Errorf("deployment without namespace applied to %q, want default", dep.GetNamespace())
	}
	img := containerImages(t, dep, "spec", "template", "spec", "containers")
	if img[0] != "registry:5000/kubevirt/virt-api@"+apiDigest.String() {
		t.Errorf("virt-api image %s", img[0])
	}
	cm, _, _ := unstructured.NestedString(d.applied[1].Object, "data", "image")
	if cm != "kubevirt/virt-api:devel" {
		t.Errorf("ConfigMap data rewritten: %s", cm)
	}
	ds := d.applied[2]
	wantH := "registry:5000/kubevirt/virt-handler@" + handlerDigest.String()
	if got := containerImages(t, ds, "spec", "template", "spec", "initContainers"); got[0] != wantH {
		t.Errorf("init container %s, want %s", got[0], wantH)
	}
	got := containerImages(t, ds, "spec", "template", "spec", "containers")
	if got[0] != wantH || got[1] != "kubevirt/virt-launcher:devel" {
		t.Errorf("containers %v", got)
	}
	if !strings.Contains(logBuf.String(), "warning:") || !strings.Contains(logBuf.String(), "kubevirt/virt-launcher:devel left as is") {
		t.Errorf("no warning for the image that was not synced:\n%s", logBuf.String())
	}
	pinned := 0
	for _, c := range res.Changes {
		if c.To != "" {
			pinned++
		}
	}
	if pinned != 3 {
		t.Errorf("pinned %d references, want 3: %v", pinned, res.Changes)
	}
}

func containerImages(t *testing.T, o *unstructured.Unstructured, path ...string) []string {
	t.Helper()
	list, _, err := unstructured.NestedSlice(o.Object, path...)
	must(t, err)
	var out []string
	for _, c := range list {
		out = append(out, c.(map[string]any)["image"].(string))
	}
	return out
}

// A manifest that does not parse stops the sync before anything is pushed,
// naming the file and line.
func TestSyncBrokenManifest(t *testing.T) {
	reg := newTestRegistry(t)
	eng := newFakeEngine(t)
	eng.addImage("kubevirt/virt-api:devel", randomImage(t, kib, 1))
	o := engineOptions(reg, eng)
	o.Manifests, o.Deployer = []string{"testdata/broken/broken.yaml"}, &fakeDeployer{}
	_, err := Sync(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "testdata/broken/broken.yaml:9:") {
		t.Fatalf("got %v, want testdata/broken/broken.yaml:9:", err)
	}
	if len(eng.Commands()) != 0 {
		t.Errorf("images were looked at before the manifests were checked: %v", eng.Commands())
	}
}

func TestSyncApplyFails(t *testing.T) {
	reg := newTestRegistry(t)
	eng := newFakeEngine(t)
	eng.addImage("kubevirt/virt-api:devel", randomImage(t, kib, 1))
	o := engineOptions(reg, eng)
	o.Manifests = []string{"testdata/rewrite.yaml"}
	o.Deployer = &fakeDeployer{applyErr: errString("apply Deployment kubevirt/virt-api: forbidden")}
	_, err := Sync(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "forbidden") || !strings.Contains(err.Error(), "apply") {
		t.Fatalf("got %v", err)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// Two images that would land on the same destination are refused.
func TestEngineMatchesConflict(t *testing.T) {
	p, _ := ParsePrefix("kubevirt")
	_, err := engineMatches([]EngineImage{
		{Repository: "localhost/kubevirt/virt-api", Tag: "devel", ID: "sha256:aa"},
		{Repository: "docker.io/kubevirt/virt-api", Tag: "devel", ID: "sha256:bb"},
	}, p, "devel")
	if err == nil || !strings.Contains(err.Error(), "localhost/kubevirt/virt-api:devel") {
		t.Fatalf("got %v", err)
	}
	// the same image twice is fine
	m, err := engineMatches([]EngineImage{
		{Repository: "localhost/kubevirt/virt-api", Tag: "devel", ID: "sha256:aa"},
		{Repository: "docker.io/kubevirt/virt-api", Tag: "devel", ID: "sha256:aa"},
	}, p, "devel")
	if err != nil || len(m) != 1 {
		t.Fatalf("got %v %v", m, err)
	}
}

// refuseAfterPing answers the registry check and then acts as if the
// registry went away.
type refuseAfterPing struct{ base http.RoundTripper }

func (r refuseAfterPing) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && req.URL.Path == "/v2/" && req.Header.Get("User-Agent") == "" {
		return r.base.RoundTrip(req)
	}
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
}

func TestSyncRegistryGoesAway(t *testing.T) {
	reg := newTestRegistry(t)
	eng := newFakeEngine(t)
	eng.addImage("kubevirt/virt-api:devel", randomImage(t, kib, 1))
	o := engineOptions(reg, eng)
	o.Transport = refuseAfterPing{base: http.DefaultTransport}
	_, err := Sync(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "went away") || !strings.Contains(err.Error(), "kubevirt/virt-api:devel") {
		t.Fatalf("got %v", err)
	}
}
