package kindsriov

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/components"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/cri"
	"github.com/kubevirt/kubevirtci-go/internal/kindcfg"
	"github.com/kubevirt/kubevirtci-go/internal/kubeapply"
	"github.com/kubevirt/kubevirtci-go/internal/kubewait"
	"github.com/kubevirt/kubevirtci-go/internal/sriov"
)

// FieldManager is the server-side apply field manager of everything the
// provider applies (kubeapply owns the name).
const FieldManager = kubeapply.DefaultFieldManager

func (p *Provider) componentParams(st *upState) components.Params {
	c := p.cfg()
	params := components.DefaultParams()
	params.NodeLabelKey = sriov.NodeLabelKey
	params.NodeLabelValue = sriov.NodeLabelValue
	params.VFDriver = sriov.VFDriver
	params.MultusImage = c.MultusImage
	params.SRIOVCNIImage = c.SRIOVCNIImage
	params.DevicePluginImage = c.SRIOVDevicePluginImage
	params.InjectorImage = c.InjectorImage
	// Every PF moved into a node, on every node (the old scripts listed only
	// the last PF of each node).
	for _, a := range st.assignments {
		for _, pf := range a.PFs {
			params.PFNames = append(params.PFNames, pf.Name)
		}
	}
	return params
}

func (p *Provider) deployComponents(ctx context.Context, st *upState) error {
	return p.deps.deploy(ctx, st.client, st.rest, p.componentParams(st))
}

func (p *Provider) waitComponents(ctx context.Context, st *upState) error {
	c := p.cfg()
	var vfs map[string]int64
	if !c.SkipAllocatableWait {
		vfs = map[string]int64{}
		for _, a := range st.assignments {
			vfs[a.Node] = int64(len(a.PFs) * c.VFsCount)
		}
	}
	err := p.deps.waitComponents(ctx, st.client, p.componentParams(st), components.WaitOptions{
		Skip:               c.SkipComponentWaits,
		VFsPerNode:         vfs,
		DaemonSetsTimeout:  c.ComponentWaitTimeout,
		PodsTimeout:        c.ComponentWaitTimeout,
		AllocatableTimeout: c.AllocatableWaitTimeout,
		// The local images were loaded before the deployment: a pull
		// that fails now, a crash loop, a pod no node takes, will not
		// be healed by waiting.
		FailFast: true,
	})
	return p.imageSettings(err)
}

// imageSettings adds to a wait that gave up on what does not heal (images
// that cannot be pulled, containers crashing) which settings chose the
// images of the containers concerned.
func (p *Provider) imageSettings(err error) error {
	if !errors.Is(err, kubewait.ErrWontHeal) {
		return err
	}
	c := p.cfg()
	var named []string
	for _, s := range []struct{ name, image string }{
		{config.EnvMultusImage, c.MultusImage},
		{config.EnvSRIOVCNIImage, c.SRIOVCNIImage},
		{config.EnvSRIOVDevicePluginImage, c.SRIOVDevicePluginImage},
		{config.EnvInjectorImage, c.InjectorImage},
	} {
		if s.image != "" && strings.Contains(err.Error(), "(image "+s.image) {
			named = append(named, s.name+"="+s.image)
		}
	}
	if len(named) == 0 {
		return err
	}
	hint := "an image the nodes can pull"
	if len(c.RegistryMirrors) > 0 {
		hint += " (through " + config.EnvRegistryMirrors + ")"
	}
	return fmt.Errorf("%w\n\nThe images of these containers are set by %s: set them to %s that runs, or to one the local engine has (it is loaded into the nodes; `make images` builds them)", err, strings.Join(named, ", "), hint)
}

// waitedFor says what cluster-up waited for before it called the cluster
// ready, and what it was told not to wait for.
func (p *Provider) waitedFor() (ready bool, what string) {
	c := p.cfg()
	res := components.DefaultParams().Resource()
	comps := "multus, sriov-cni and the device plugin"
	if c.InjectorImage != "" {
		comps = "multus, sriov-cni, the device plugin and network-resources-injector"
	}
	switch {
	case c.SkipComponentWaits:
		return false, fmt.Sprintf("%s deployed but not waited for (%s=true)", comps, config.EnvSkipComponentWaits)
	case c.SkipAllocatableWait:
		return true, fmt.Sprintf("%s rolled out and every pod Ready; allocatable %s not waited for (%s=true)", comps, res, config.EnvSkipAllocatableWait)
	}
	return true, fmt.Sprintf("%s rolled out, allocatable %s on every SR-IOV node, every pod Ready", comps, res)
}

// Component images the local engine has reach the nodes preloaded in their
// node image: before kind create, the node image (KIND_NODE_IMAGE) gets one
// more layer, its containerd's store with those images imported, and kind
// creates every node from that image. The image is made once per node
// image and component images (their IDs name it) and kept in the engine,
// like the images `make images` builds; the next one made for the same
// node image replaces it. The nodes pull the component images the engine
// does not have from their registries as usual.
//
// Why this rather than `kind load` after kind create, or the cluster's
// registry: the image settings keep their meaning (a name the nodes run,
// unchanged in the manifests), an image built here reaches the nodes
// without any registry, and a cluster-up pays nothing for it once the
// image is made: an import into each node (about 150 MB written and
// unpacked per node, three nodes at once) competed with the control plane
// and the workers' start for the CPU (measured in docs/figures.md). The
// node image itself stays independent of the components' versions; only
// this derived image is not.
//
// Every image in the derived image's containerd is unpacked, the node
// image's own ones too (kind's node images, and the ones built here, carry
// theirs packed: `ctr images import --no-unpack`). A node otherwise
// unpacks each image its pods run when it creates their first container,
// which is when every node starts its pods at once: on a 2-core host a
// worker's kube-proxy took 26 s from CreateContainer to its container, a
// whole kind-sriov cluster-up 86 to 90 s and 152 to 160 CPU-seconds; with
// everything unpacked 64 s and 107 CPU-seconds. The price is in kind
// create: each node's /var starts as a copy of the image's (see unpackAll
// for its size).

// Labels of a node image with preloaded component images.
const (
	preloadRepo      = "localhost/kubevirtci-node-preload"
	preloadLabel     = "io.kubevirtci.preload"
	preloadNodeLabel = "io.kubevirtci.preload.node"
)

// localComponentImages returns the component images the local engine has,
// each once, in the settings' order, and their IDs.
func (p *Provider) localComponentImages(ctx context.Context) ([]string, map[string]string, error) {
	c := p.cfg()
	var local []string
	ids := map[string]string{}
	seen := map[string]bool{}
	for _, ref := range []string{c.MultusImage, c.SRIOVCNIImage, c.SRIOVDevicePluginImage, c.InjectorImage} {
		if ref == "" || seen[ref] {
			continue
		}
		seen[ref] = true
		id, ok, err := p.cli.LocalImageID(ctx, ref)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			local, ids[ref] = append(local, ref), id
		} else {
			p.env.Log.Debugf("   %s is not in %s: the nodes pull it", ref, p.cli.Name())
		}
	}
	return local, ids, nil
}

// preloadImages is the step before kind create: with component images in
// the local engine, the nodes' image becomes the node image with them
// preloaded (made now when the engine does not have it yet).
func (p *Provider) preloadImages(ctx context.Context, st *upState) error {
	c := p.cfg()
	local, ids, err := p.localComponentImages(ctx)
	if err != nil || len(local) == 0 {
		return err
	}
	nodeID, ok, err := p.cli.LocalImageID(ctx, c.NodeImage)
	if err != nil {
		return err
	}
	if !ok {
		// kind would pull it; the preload needs it first.
		if err := p.cli.PullImage(ctx, c.NodeImage); err != nil {
			return fmt.Errorf("pulling the node image %s (%s): %w", c.NodeImage, config.EnvNodeImage, err)
		}
		if nodeID, err = p.cli.ImageID(ctx, c.NodeImage); err != nil {
			return err
		}
	}
	ref := preloadRef(c.NodeImage, nodeID, local, ids)
	if ok, err := p.cli.ImageExists(ctx, ref); err != nil {
		return err
	} else if ok {
		p.env.Log.Debugf("   %s has them (made by an earlier cluster-up)", ref)
	} else if err := p.makePreload(ctx, ref, local); err != nil {
		return fmt.Errorf("preloading %s into the node image %s: %w", strings.Join(local, ", "), c.NodeImage, err)
	}
	o := st.kindOptions
	o.NodeImage = ref
	if st.kindConfig, err = kindcfg.Render(c, o); err != nil {
		return err
	}
	st.nodeImage, st.loadedImages = ref, local
	return nil
}

// preloadRef names the node image node (ID nodeID) with local (IDs ids)
// preloaded: its tag hashes the names and IDs.
func preloadRef(node, nodeID string, local []string, ids map[string]string) string {
	h := sha256.New()
	// "preload 3": every image unpacked, its layers' blobs removed (2:
	// unpacked; 1: only imported).
	fmt.Fprintf(h, "preload 3\n%s %s\n", node, nodeID)
	for _, ref := range local {
		fmt.Fprintf(h, "%s %s\n", ref, ids[ref])
	}
	return fmt.Sprintf("%s:%x", preloadRepo, h.Sum(nil)[:8])
}

// makePreload makes ref: a container of the node image runs only its
// containerd (no systemd, no kubelet), the images are imported into it and
// every image of its store is unpacked (see above), containerd stops, and
// the container is committed with the node image's own entrypoint and
// command. Older preloads of the same node image are removed (one still
// used by a cluster stays).
func (p *Provider) makePreload(ctx context.Context, ref string, local []string) (err error) {
	c := p.cfg()
	log := p.env.Log
	return log.Run("Preloading "+strings.Join(local, ", ")+" into the node image (once per image change)", func() error {
		entrypoint, cmd, err := p.cli.ImageCommand(ctx, c.NodeImage)
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "kubevirtci-images-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		archive := filepath.Join(dir, "components.tar")
		if err := p.cli.SaveImages(ctx, archive, local...); err != nil {
			return err
		}
		name := "kubevirtci-preload-" + strings.TrimPrefix(ref, preloadRepo+":")
		if err := p.cli.Remove(ctx, name); err != nil {
			return err
		}
		if _, err := p.cli.RunDetached(ctx, cri.RunSpec{
			Name: name, Image: c.NodeImage, Entrypoint: "containerd", Privileged: true,
			Tmpfs: []string{"/run", "/tmp"}, Labels: map[string]string{preloadLabel: "builder"},
		}); err != nil {
			return err
		}
		defer func() {
			// A fresh context: an interrupted preload still removes it.
			rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if rerr := p.cli.Remove(rctx, name); rerr != nil && err == nil {
				err = rerr
			}
		}()
		if err := p.waitContainerd(ctx, name); err != nil {
			return err
		}
		f, err := os.Open(archive)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := p.cli.ExecInput(ctx, f, name, "ctr", "--namespace=k8s.io", "images", "import", "--all-platforms", "-"); err != nil {
			return err
		}
		if _, err := p.cli.Exec(ctx, name, "sh", "-c", unpackAll); err != nil {
			return fmt.Errorf("unpacking the images: %w", err)
		}
		if err := p.cli.StopContainer(ctx, name); err != nil {
			return err
		}
		changes := []string{
			"ENTRYPOINT " + jsonList(entrypoint), "CMD " + jsonList(cmd),
			"LABEL " + preloadLabel + "=" + strconv.Quote(strings.Join(local, " ")),
			"LABEL " + preloadNodeLabel + "=" + strconv.Quote(c.NodeImage),
		}
		if err := p.cli.CommitContainer(ctx, name, ref, changes...); err != nil {
			return err
		}
		p.removeOlderPreloads(ctx, ref)
		return nil
	})
}

// unpackAll unpacks every image in a node's containerd store (namespace
// k8s.io) into its default snapshotter, the one the CRI plugin uses: ctr
// has no unpack command, but mounting an image unpacks it first, and the
// unpacked layers stay with the image once the mount is removed. Each
// image gets its own mount point (containerd 2 keeps a removed one's name
// for a while). An image already unpacked mounts at once.
//
// Then the layers' blobs go (the digests the manifests name as layers):
// the CRI plugin runs containers from the unpacked snapshots and needs of
// an image only its manifest and config, as with containerd's own
// discard_unpacked_layers for pulls. Every node's /var is a copy of the
// image's, made when kind creates it: 0.83 GB instead of 1.3 GB for
// kind-sriov's (4.3 to 4.9 s instead of 6.3 to 6.6 s for one node here).
// `ctr images check` then calls the images incomplete (and unpacked).
const unpackAll = `set -e
dir=$(mktemp -d)
n=0
for ref in $(ctr --namespace=k8s.io images ls -q); do
	case "$ref" in sha256:*) continue ;; esac
	n=$((n + 1))
	mkdir "$dir/$n"
	ctr --namespace=k8s.io images mount "$ref" "$dir/$n" >/dev/null
	ctr --namespace=k8s.io images unmount --rm "$dir/$n" >/dev/null
done
rm -rf "$dir"
layers=$(ctr --namespace=k8s.io content ls | tr ',[:space:]' '\n' | sed -n 's/^containerd\.io\/gc\.ref\.content\.l\.[0-9]*=//p' | sort -u)
if [ -n "$layers" ]; then
	ctr --namespace=k8s.io content rm $layers >/dev/null
fi
echo "$n images unpacked, $(echo $layers | wc -w) layer blobs removed"
`

// waitContainerd waits until containerd answers in container name.
func (p *Provider) waitContainerd(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		_, err := p.cli.Exec(ctx, name, "ctr", "version")
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("containerd in %s did not answer: %w", name, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// removeOlderPreloads removes the preloads of the same node image but ref.
func (p *Provider) removeOlderPreloads(ctx context.Context, ref string) {
	refs, err := p.cli.ImagesWithLabel(ctx, preloadNodeLabel+"="+p.cfg().NodeImage)
	if err != nil {
		p.env.Log.Debugf("   listing older preloads: %v", err)
		return
	}
	for _, r := range refs {
		if r == ref {
			continue
		}
		if err := p.cli.RemoveImage(ctx, r); err != nil {
			p.env.Log.Debugf("   keeping %s: %v", r, err)
		} else {
			p.env.Log.Debugf("   removed %s (an older preload)", r)
		}
	}
}

// jsonList is a Dockerfile instruction's JSON form of args.
func jsonList(args []string) string {
	if args == nil {
		args = []string{}
	}
	b, _ := json.Marshal(args)
	return string(b)
}
