package imagesync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Pushed is the outcome for one image.
type Pushed struct {
	Name       string        // under the prefix: virt-api
	Tag        string        // devel
	Origin     string        // where it came from
	HostRef    string        // localhost:5000/kubevirt/virt-api:devel
	ClusterRef string        // registry:5000/kubevirt/virt-api@sha256:...
	Digest     v1.Hash       // manifest (or index) digest
	Size       int64         // manifest + config + layers
	Sent       int64         // request body bytes sent to the registry
	Skipped    int64         // Size - Sent: bytes the registry already had
	Unchanged  bool          // the registry already had this manifest under the tag
	Exported   bool          // the image was read (saved from the engine or opened)
	Duration   time.Duration // from start to end of this image
}

// checkRegistry asks GET /v2/ of the registry; a registry answers 200 (or
// 401 when it wants credentials).
func checkRegistry(ctx context.Context, rt http.RoundTripper, hostport string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := "http://" + hostport + "/v2/"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("no registry answers on %s (connection refused): is the cluster up? Run `make cluster-up` "+
				"(the registry is published on localhost:<HOST_PORT>: 5000 for CLUSTER_NAME=sriov, 5001 for other names)", hostport)
		}
		return fmt.Errorf("the registry on %s is unreachable: GET %s: %v; is the cluster up? Run `make cluster-up`", hostport, u, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("%s answered GET %s with %s: that is not an image registry; check HOST_PORT", hostport, u, resp.Status)
	}
	return nil
}

// countingTransport counts the request body bytes that go through it.
type countingTransport struct {
	base http.RoundTripper
	sent atomic.Int64
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		req = req.Clone(req.Context())
		req.Body = &countingBody{rc: req.Body, n: &t.sent}
	}
	return t.base.RoundTrip(req)
}

type countingBody struct {
	rc io.ReadCloser
	n  *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// pusher pushes images to one registry, several at once. Blobs shared by
// images of different repositories are uploaded once: later images wait for
// the first upload and then mount the blob instead of sending it again.
type pusher struct {
	registry name.Registry
	prefix   Prefix
	cluster  string // registry:5000
	base     http.RoundTripper
	cache    *cache

	mu    sync.Mutex
	blobs map[v1.Hash]*blobClaim
}

type blobClaim struct {
	done chan struct{}
	repo name.Repository
	err  error
}

func (p *pusher) options(ctx context.Context, rt http.RoundTripper) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(rt),
		remote.WithUserAgent("kubevirtci-sync"),
		remote.WithJobs(4),
	}
}

// push pushes one candidate and reports what it took.
func (p *pusher) push(ctx context.Context, c candidate, tmp string) (res Pushed, err error) {
	start := time.Now()
	repo := p.registry.Repo(p.prefix.Path + "/" + c.name)
	dst := repo.Tag(c.tag)
	res = Pushed{Name: c.name, Tag: c.tag, Origin: c.origin, HostRef: dst.String()}
	defer func() { res.Duration = time.Since(start) }()

	ct := &countingTransport{base: p.base}
	opts := p.options(ctx, ct)
	finish := func(d v1.Hash, size int64) {
		res.Digest, res.Size, res.Sent = d, size, ct.sent.Load()
		res.Skipped = max(0, size-res.Sent)
		res.ClusterRef = p.cluster + "/" + p.prefix.Path + "/" + c.name + "@" + d.String()
	}

	// An engine image whose ID is what the registry has under the tag is
	// not exported at all.
	if c.engineID != "" {
		d, size, same, err := p.sameAsEngine(dst, c.engineID, opts)
		if err != nil {
			return res, err
		}
		if same {
			res.Unchanged = true
			finish(d, size)
			return res, nil
		}
	}

	dir, err := os.MkdirTemp(tmp, "image-*")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	t, layers, err := c.open(ctx, dir)
	if err != nil {
		return res, err
	}
	res.Exported = true
	defer func() {
		if err != nil {
			// A stale hint must not survive into the next run.
			for _, l := range layers {
				if l.hinted {
					p.cache.forgetLayer(l.diffID)
				}
			}
		}
	}()
	d, size, err := taggableDigestSize(t)
	if err != nil {
		return res, fmt.Errorf("%s: %w", c.origin, err)
	}
	head, err := remote.Head(dst, opts...)
	switch {
	case err == nil && head.Digest == d:
		res.Unchanged = true
	case err == nil || isNotFound(err):
		pu, err := remote.NewPusher(opts...)
		if err != nil {
			return res, err
		}
		if img, ok := t.(v1.Image); ok {
			if err := p.uploadLayers(ctx, pu, repo, img); err != nil {
				return res, fmt.Errorf("pushing %s to %s: %w", c.origin, dst, err)
			}
		}
		if err := pu.Push(ctx, dst, t); err != nil {
			return res, fmt.Errorf("pushing %s to %s: %w", c.origin, dst, err)
		}
	default:
		return res, fmt.Errorf("asking %s for %s: %w", p.registry, dst, err)
	}
	for _, l := range layers {
		if ld, ls, ok := l.computed(); ok {
			p.cache.putLayer(l.diffID, ld, ls)
		}
	}
	p.cache.putImage(dst.String(), c.engineID, d)
	finish(d, size)
	return res, nil
}

// sameAsEngine reports whether the registry holds, under dst, the engine
// image with the given ID: its config digest is the ID (docker's classic
// store, podman), or the cache recorded that this ID was pushed as the
// digest the tag has now (docker's containerd store, where IDs are manifest
// digests).
func (p *pusher) sameAsEngine(dst name.Tag, engineID string, opts []remote.Option) (v1.Hash, int64, bool, error) {
	desc, err := remote.Get(dst, opts...)
	if isNotFound(err) {
		return v1.Hash{}, 0, false, nil
	}
	if err != nil {
		return v1.Hash{}, 0, false, fmt.Errorf("asking %s for %s: %w", p.registry, dst, err)
	}
	if !desc.MediaType.IsImage() {
		return v1.Hash{}, 0, false, nil
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return v1.Hash{}, 0, false, nil
	}
	size := desc.Size + m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	if m.Config.Digest.String() == engineID {
		return desc.Digest, size, true, nil
	}
	if h, ok := p.cache.image(dst.String()); ok && h.EngineID == engineID && h.Digest == desc.Digest {
		return desc.Digest, size, true, nil
	}
	return v1.Hash{}, 0, false, nil
}

// uploadLayers uploads the layers of img to repo, each blob once across all
// images of this sync.
func (p *pusher) uploadLayers(ctx context.Context, pu *remote.Pusher, repo name.Repository, img v1.Image) error {
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	errs := make([]error, len(ls))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for k, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[k] = p.uploadLayer(ctx, pu, repo, l)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (p *pusher) uploadLayer(ctx context.Context, pu *remote.Pusher, repo name.Repository, l v1.Layer) error {
	d, err := l.Digest()
	if err != nil {
		return err
	}
	p.mu.Lock()
	claim, taken := p.blobs[d]
	if !taken {
		claim = &blobClaim{done: make(chan struct{}), repo: repo}
		p.blobs[d] = claim
	}
	p.mu.Unlock()
	if !taken {
		claim.err = pu.Upload(ctx, repo, l)
		if claim.err != nil {
			p.mu.Lock()
			delete(p.blobs, d) // let another image try again
			p.mu.Unlock()
		}
		close(claim.done)
		return claim.err
	}
	select {
	case <-claim.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if claim.err == nil && claim.repo != repo {
		// Ask the registry to link the blob from where it was just
		// uploaded; it falls back to an upload if it cannot.
		l = &remote.MountableLayer{Layer: l, Reference: claim.repo.Digest(d.String())}
	}
	return pu.Upload(ctx, repo, l)
}

// taggableDigestSize is the digest of an image or index and its size: the
// manifest plus everything it references (for an index, its own manifest
// and those of its children with their blobs).
func taggableDigestSize(t remote.Taggable) (v1.Hash, int64, error) {
	switch v := t.(type) {
	case v1.Image:
		d, err := v.Digest()
		if err != nil {
			return v1.Hash{}, 0, err
		}
		size, err := imageSize(v)
		return d, size, err
	case v1.ImageIndex:
		d, err := v.Digest()
		if err != nil {
			return v1.Hash{}, 0, err
		}
		size, err := indexSize(v)
		return d, size, err
	}
	return v1.Hash{}, 0, fmt.Errorf("unexpected artifact %T", t)
}

func imageSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	size, err := img.Size()
	if err != nil {
		return 0, err
	}
	size += m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	return size, nil
}

func indexSize(ii v1.ImageIndex) (int64, error) {
	size, err := ii.Size()
	if err != nil {
		return 0, err
	}
	children, err := partial.Manifests(ii)
	if err != nil {
		return 0, err
	}
	for _, c := range children {
		var s int64
		switch v := c.(type) {
		case v1.Image:
			s, err = imageSize(v)
		case v1.ImageIndex:
			s, err = indexSize(v)
		}
		if err != nil {
			return 0, err
		}
		size += s
	}
	return size, nil
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// isConnRefused reports a registry that went away in the middle of a sync.
func isConnRefused(err error) bool {
	var oe *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &oe) && oe.Op == "dial")
}
