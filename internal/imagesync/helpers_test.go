package imagesync

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
	"github.com/kubevirt/kubevirtci-go/internal/step"
)

// testRegistry is go-containerregistry's in-memory registry on httptest,
// reached through a transport that counts what is sent to it.
type testRegistry struct {
	srv  *httptest.Server
	host string // 127.0.0.1:<port>
	rt   *meter
}

func newTestRegistry(t testing.TB) *testRegistry {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return &testRegistry{srv: srv, host: strings.TrimPrefix(srv.URL, "http://"), rt: &meter{base: http.DefaultTransport}}
}

// meter is an http.RoundTripper that counts request body bytes and
// requests by method.
type meter struct {
	base        http.RoundTripper
	uploadDelay time.Duration // slows blob uploads (PATCH, PUT of blobs)
	sent        atomic.Int64
	mu          sync.Mutex
	requests    map[string]int
}

func (m *meter) RoundTrip(req *http.Request) (*http.Response, error) {
	m.mu.Lock()
	if m.requests == nil {
		m.requests = map[string]int{}
	}
	m.requests[req.Method]++
	m.mu.Unlock()
	if m.uploadDelay > 0 && strings.Contains(req.URL.Path, "/blobs/uploads/") && req.Method != http.MethodPost {
		time.Sleep(m.uploadDelay)
	}
	if req.Body != nil && req.Body != http.NoBody {
		req = req.Clone(req.Context())
		req.Body = &countingBody{rc: req.Body, n: &m.sent}
	}
	return m.base.RoundTrip(req)
}

// reset returns the bytes sent and the requests made since the last reset.
func (m *meter) reset() (int64, map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.requests
	m.requests = nil
	return m.sent.Swap(0), r
}

func (r *testRegistry) ref(t testing.TB, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(r.host+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// digestOf asks the registry for the digest of repo:tag.
func (r *testRegistry) digestOf(t testing.TB, s string) v1.Hash {
	t.Helper()
	d, err := remote.Head(r.ref(t, s))
	if err != nil {
		t.Fatalf("HEAD %s: %v", s, err)
	}
	return d.Digest
}

func randomImage(t testing.TB, layerSize int64, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(layerSize, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// imageWith builds an image of the given layers on an empty base.
func imageWith(t testing.TB, ls ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func randomLayer(t testing.TB, size int64) v1.Layer {
	t.Helper()
	l, err := random.Layer(size, "application/vnd.docker.image.rootfs.diff.tar.gzip")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// writeDockerSave writes img as `docker save` does: manifest.json, the
// config as <id>.json and uncompressed layers as <diffid>/layer.tar.
func writeDockerSave(t testing.TB, path string, img v1.Image, repoTags ...string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, r io.Reader, size int64) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, r); err != nil {
			t.Fatal(err)
		}
	}
	cfgName, _ := img.ConfigName()
	raw, _ := img.RawConfigFile()
	add(cfgName.Hex+".json", bytes.NewReader(raw), int64(len(raw)))
	ls, _ := img.Layers()
	var paths []string
	for _, l := range ls {
		d, _ := l.DiffID()
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		p := d.Hex + "/layer.tar"
		add(p, bytes.NewReader(b), int64(len(b)))
		paths = append(paths, p)
	}
	m, _ := json.Marshal([]tarball.Descriptor{{Config: cfgName.Hex + ".json", RepoTags: repoTags, Layers: paths}})
	add("manifest.json", bytes.NewReader(m), int64(len(m)))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeGGCRTarball writes img with go-containerregistry's tarball.Write
// (compressed layers).
func writeGGCRTarball(t testing.TB, path, ref string, img v1.Image) {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
}

// fakeEngine is a scripted docker: `images` answers from a list, `save -o
// FILE REF` writes the archive registered for REF. Calls are recorded by
// the embedded cmdrun.Fake.
type fakeEngine struct {
	*cmdrun.Fake
	t      testing.TB
	mu     sync.Mutex
	images map[string]engineEntry // by ref
	order  []string
}

type engineEntry struct {
	id    string
	write func(path string)
}

func newFakeEngine(t testing.TB) *fakeEngine {
	return &fakeEngine{Fake: (&cmdrun.Fake{}).On("", nil, "docker"), t: t, images: map[string]engineEntry{}}
}

// add registers an image under ref (repo:tag) with a writer for its archive.
func (f *fakeEngine) add(ref, id string, write func(path string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.images[ref]; !ok {
		f.order = append(f.order, ref)
	}
	f.images[ref] = engineEntry{id: id, write: write}
}

// addImage registers img as docker would hold it (classic store: the ID is
// the config digest), exported like `docker save`.
func (f *fakeEngine) addImage(ref string, img v1.Image) {
	id, err := img.ConfigName()
	if err != nil {
		f.t.Fatal(err)
	}
	f.add(ref, id.String(), func(path string) { writeDockerSave(f.t, path, img, ref) })
}

func (f *fakeEngine) Run(ctx context.Context, stdin io.Reader, cli string, args ...string) ([]byte, error) {
	if _, err := f.Fake.Run(ctx, stdin, cli, args...); err != nil { // records the call
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case len(args) > 0 && args[0] == "images":
		var list strings.Builder
		for _, ref := range f.order {
			repo, tag, _ := splitRef(ref)
			list.WriteString(repo + " " + tag + " " + f.images[ref].id + "\n")
		}
		return []byte(list.String()), nil
	case len(args) == 4 && args[0] == "save" && args[1] == "-o":
		e, ok := f.images[args[3]]
		if !ok {
			return nil, &cmdrun.RunError{Argv: append([]string{cli}, args...), Stderr: []byte("Error response from daemon: reference does not exist"), Err: io.ErrUnexpectedEOF}
		}
		e.write(args[2])
		return nil, nil
	}
	return nil, &cmdrun.RunError{Argv: append([]string{cli}, args...), Err: io.ErrUnexpectedEOF}
}

// saves counts the `save` calls so far.
func (f *fakeEngine) saves() int {
	n := 0
	for _, c := range f.Commands() {
		if strings.HasPrefix(c, "docker save ") {
			n++
		}
	}
	return n
}

// logger returns a step logger writing into a buffer.
func logger() (*step.Logger, *bytes.Buffer) {
	var b bytes.Buffer
	return step.New(&syncWriter{w: &b}, true), &b
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

type tarWriter struct{ *tar.Writer }

func newTarWriter(w io.Writer) tarWriter { return tarWriter{tar.NewWriter(w)} }

func (tw tarWriter) add(name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}
