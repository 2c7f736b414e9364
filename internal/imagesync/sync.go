// Package imagesync is the provider's sync: it pushes the images a developer
// built into the cluster's registry and, optionally, rolls them out.
//
// Sources are the container engine's images named <DOCKER_PREFIX>/<name>:<DOCKER_TAG>
// (docker lists kubevirt/virt-api, podman localhost/kubevirt/virt-api; both
// match DOCKER_PREFIX=kubevirt; a prefix with a host, e.g. quay.io/kubevirt,
// matches only that host), plus the OCI layouts and image archives listed in
// SYNC_SOURCES (all their images, named by the file; see fileCandidates).
//
// Images go to the registry's host side, localhost:<HOST_PORT>/<path>/<name>:<tag>,
// with go-containerregistry over plain HTTP (loopback only), several at once.
// Nothing the registry already has is sent: an engine image whose ID the
// registry already holds under the tag is not even exported, manifests are
// checked by digest, blobs by HEAD, and blobs shared between images are
// uploaded once. One line per image tells what was sent and skipped.
//
// With SYNC_MANIFESTS, the manifests' references to these images are pinned
// to registry:5000/<path>/<name>@sha256:<digest> (see Rewriter), applied with
// server-side apply, and their rollout is awaited.
package imagesync

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
	"github.com/kubevirt/kubevirtci-go/internal/localregistry"
	"github.com/kubevirt/kubevirtci-go/internal/step"
)

// Defaults.
const (
	DefaultPrefix          = "kubevirt"
	DefaultTag             = "devel"
	DefaultClusterRegistry = localregistry.ClusterHost
	DefaultJobs            = 3
	DefaultRolloutTimeout  = 5 * time.Minute
	DefaultNamespace       = "default"

	CompressGzip = "gzip"
	CompressNone = "none"
)

// Options is everything a sync needs; the caller reads the settings.
type Options struct {
	// Engine: the container CLI (docker or podman) and how to run it. An
	// empty CLI means: no engine images, only Sources.
	CLI    string
	Runner cmdrun.Runner

	Prefix string // DOCKER_PREFIX, default kubevirt
	Tag    string // DOCKER_TAG, default devel

	Sources []string // SYNC_SOURCES: OCI layout folders, OCI or docker archives

	Registry        string // host side, e.g. localhost:5000; must be a loopback address
	ClusterRegistry string // how nodes name it, default registry:5000

	Manifests      []string      // SYNC_MANIFESTS: files or folders; empty = push only
	Deployer       Deployer      // needed when Manifests is set
	Namespace      string        // for manifest objects without one, default "default"
	RolloutTimeout time.Duration // default 5 minutes

	// Compression of the layers of exported images (engine images and
	// archives with uncompressed layers): CompressGzip (default) or
	// CompressNone (pushed as they are; see plainlayers.go). Layers that
	// are compressed already are pushed as they are either way.
	Compression string

	Jobs      int               // images pushed at once, default 3
	Transport http.RoundTripper // default http.DefaultTransport
	CacheFile string            // hints kept between runs; "" = none
	TempDir   string            // for exported images, default os.TempDir()

	Log *step.Logger
}

// Result is what a sync did.
type Result struct {
	Images  []Pushed                     // by name and tag
	Changes []Change                     // image references seen in the manifests
	Applied []*unstructured.Unstructured // the objects applied, rewritten
}

// Sent is the total of bytes sent to the registry.
func (r *Result) Sent() int64 {
	var n int64
	for _, i := range r.Images {
		n += i.Sent
	}
	return n
}

func (o *Options) defaults() error {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Tag == "" {
		o.Tag = DefaultTag
	}
	if _, err := name.NewTag("localhost/x:" + o.Tag); err != nil {
		return fmt.Errorf("DOCKER_TAG=%q is not a tag (letters, digits, _ . -, up to 128 characters), e.g. devel", o.Tag)
	}
	switch o.Compression {
	case "":
		o.Compression = CompressGzip
	case CompressGzip, CompressNone:
	default:
		return fmt.Errorf("layer compression %q is not known: use %s or %s", o.Compression, CompressGzip, CompressNone)
	}
	if o.ClusterRegistry == "" {
		o.ClusterRegistry = DefaultClusterRegistry
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.RolloutTimeout <= 0 {
		o.RolloutTimeout = DefaultRolloutTimeout
	}
	if o.Jobs <= 0 {
		o.Jobs = DefaultJobs
	}
	if o.Transport == nil {
		o.Transport = http.DefaultTransport
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.CLI != "" && o.Runner == nil {
		return errors.New("imagesync: Options.Runner is needed with Options.CLI")
	}
	if len(o.Manifests) > 0 && o.Deployer == nil {
		return errors.New("imagesync: Options.Deployer is needed with Options.Manifests")
	}
	if o.CLI == "" && len(o.Sources) == 0 {
		return errors.New("nothing to sync from: no container engine (CRI_BIN) and no SYNC_SOURCES")
	}
	return CheckLoopback(o.Registry)
}

// Sync pushes the images and, when manifests are given, rolls them out.
// Manifests are read first, so that a broken one fails before any push.
func Sync(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	p, err := ParsePrefix(o.Prefix)
	if err != nil {
		return nil, err
	}
	var manifests []Manifest
	if len(o.Manifests) > 0 {
		files, err := ManifestFiles(o.Manifests)
		if err != nil {
			return nil, err
		}
		if manifests, err = ReadManifests(files, o.Namespace); err != nil {
			return nil, err
		}
	}
	res := &Result{}
	if res.Images, err = push(ctx, &o, p); err != nil {
		return res, err
	}
	if len(manifests) == 0 {
		return res, nil
	}
	rw := NewRewriter(p, o.Registry, o.ClusterRegistry, res.Images)
	for _, m := range manifests {
		ch, err := rw.Rewrite(m.Object, m.Source)
		if err != nil {
			return res, err
		}
		res.Changes = append(res.Changes, ch...)
		res.Applied = append(res.Applied, m.Object)
	}
	pinned := 0
	for _, c := range res.Changes {
		if c.To == "" {
			o.Log.Infof("   warning: %s", c)
		} else {
			pinned++
			o.Log.Debugf("%s", c)
		}
	}
	err = o.Log.Run(fmt.Sprintf("apply %d objects (%d image references pinned)", len(res.Applied), pinned), func() error {
		return o.Deployer.Apply(ctx, res.Applied)
	})
	if err != nil {
		return res, err
	}
	err = o.Log.Run("wait for the rollout", func() error {
		return o.Deployer.Rollout(ctx, res.Applied, o.RolloutTimeout)
	})
	return res, err
}

// push finds the images and pushes them, o.Jobs at a time.
func push(ctx context.Context, o *Options, p Prefix) ([]Pushed, error) {
	if err := checkRegistry(ctx, o.Transport, o.Registry); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(o.TempDir, "kubevirtci-sync-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	c := openCache(o.CacheFile)

	var cands []candidate
	var engineAll []EngineImage
	if o.CLI != "" {
		cs, all, err := engineCandidates(ctx, o.Runner, o.CLI, p, o.Tag, c, o.Compression == CompressNone)
		if err != nil {
			return nil, err
		}
		cands, engineAll = cs, all
	}
	fcs, err := fileCandidates(o.Sources, p, o.Tag, tmp, c, o.Compression == CompressNone)
	if err != nil {
		return nil, err
	}
	cands = append(cands, fcs...)
	if len(cands) == 0 {
		return nil, noImageError(o, p, engineAll)
	}
	sort.Slice(cands, func(i, j int) bool {
		return cands[i].name+":"+cands[i].tag < cands[j].name+":"+cands[j].tag
	})
	for i := 1; i < len(cands); i++ {
		a, b := cands[i-1], cands[i]
		if a.name == b.name && a.tag == b.tag {
			return nil, fmt.Errorf("%s/%s:%s comes from two sources: %s and %s; keep one", p.Path, a.name, a.tag, a.origin, b.origin)
		}
	}

	reg, err := name.NewRegistry(o.Registry, name.Insecure)
	if err != nil {
		return nil, fmt.Errorf("registry address %q: %w", o.Registry, err)
	}
	pu := &pusher{registry: reg, prefix: p, cluster: o.ClusterRegistry, base: o.Transport, cache: c, blobs: map[v1.Hash]*blobClaim{}}

	out := make([]Pushed, len(cands))
	errs := make([]error, len(cands))
	title := fmt.Sprintf("push %d image%s to %s", len(cands), plural(len(cands)), o.Registry)
	err = o.Log.Run(title, func() error {
		var wg sync.WaitGroup
		sem := make(chan struct{}, o.Jobs)
		for i, cand := range cands {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				r, err := pu.push(ctx, cand, tmp)
				out[i] = r
				if err != nil {
					if isConnRefused(err) {
						err = fmt.Errorf("%w (the registry on %s went away: is the cluster still up?)", err, o.Registry)
					}
					errs[i] = fmt.Errorf("%s/%s:%s: %w", p.Path, cand.name, cand.tag, err)
					o.Log.Infof("   %-40s failed after %s", p.Path+"/"+cand.name+":"+cand.tag, r.Duration.Round(time.Millisecond))
					return
				}
				o.Log.Infof("   %s", imageLine(p, r))
			}()
		}
		wg.Wait()
		var sent, size int64
		for _, r := range out {
			sent, size = sent+r.Sent, size+r.Size
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		o.Log.Infof("   total: sent %s of %s", humanBytes(sent), humanBytes(size))
		return nil
	})
	if serr := c.save(); serr != nil {
		o.Log.Infof("   warning: %v", serr)
	}
	return out, err
}

func imageLine(p Prefix, r Pushed) string {
	what := "pushed"
	switch {
	case r.Unchanged && !r.Exported:
		what = "unchanged (not exported)"
	case r.Unchanged:
		what = "unchanged"
	}
	return fmt.Sprintf("%-40s sent %9s  skipped %9s  %s  %6s  %s",
		p.Path+"/"+r.Name+":"+r.Tag, humanBytes(r.Sent), humanBytes(r.Skipped),
		shortDigest(r.Digest.String()), r.Duration.Round(10*time.Millisecond), what)
}

func noImageError(o *Options, p Prefix, all []EngineImage) error {
	want := fmt.Sprintf("%s/<name>:%s", p, o.Tag)
	if o.CLI == "" {
		return fmt.Errorf("no image to sync: SYNC_SOURCES holds none")
	}
	msg := fmt.Sprintf("no image to sync: %s has no image %s (DOCKER_PREFIX=%s, DOCKER_TAG=%s)", o.CLI, want, o.Prefix, o.Tag)
	if near := nearMisses(all, p, o.Tag); len(near) > 0 {
		msg += "; close ones: " + strings.Join(near, ", ") + "; set DOCKER_PREFIX and DOCKER_TAG to match your build"
	} else {
		msg += fmt.Sprintf("; %s has %d tagged images, none under %s or tagged %s: build the images first", o.CLI, len(all), p, o.Tag)
	}
	return errors.New(msg)
}

func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return d[:len(d)-len(hex)] + hex[:12]
	}
	return d
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
