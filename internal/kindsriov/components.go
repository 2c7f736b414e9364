package kindsriov

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/kubevirt/kubevirtci-go/internal/components"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/kindcfg"
	"github.com/kubevirt/kubevirtci-go/internal/kubeapply"
	"github.com/kubevirt/kubevirtci-go/internal/kubewait"
	"github.com/kubevirt/kubevirtci-go/internal/preload"
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

func (p *Provider) deployInjector(ctx context.Context, st *upState) error {
	return p.deps.deployInjector(ctx, st.client, st.rest, p.componentParams(st))
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
// Every image in the derived image's containerd is unpacked (package
// preload), the node image's own ones too (kind's node images, and the
// ones built here, carry theirs packed: `ctr images import --no-unpack`),
// but those whose layers delete files, which a committed image cannot
// carry unpacked: they stay packed, as in kind's images. A node otherwise
// unpacks each image its pods run when it creates their first container,
// which is when every node starts its pods at once: on a 2-core host a
// worker's kube-proxy took 26 s from CreateContainer to its container, a
// whole kind-sriov cluster-up 86 to 90 s and 152 to 160 CPU-seconds; with
// everything unpacked 64 s and 107 CPU-seconds. The price is in kind
// create: each node's /var starts as a copy of the image's, 0.6 to 0.8 GB
// with the unpacked layers' blobs removed, against 0.2 GB for the node
// image's.

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
	// "preload 5": every image unpacked whose layers delete nothing, its
	// unpacked layers outside /var (4: under /var, copied into each node;
	// 3: every image unpacked, the blobs removed but not collected on
	// containerd 2; 2: unpacked; 1: only imported).
	fmt.Fprintf(h, "preload 5\n%s %s\n", node, nodeID)
	for _, ref := range local {
		fmt.Fprintf(h, "%s %s\n", ref, ids[ref])
	}
	return fmt.Sprintf("%s:%x", preloadRepo, h.Sum(nil)[:8])
}

// makePreload makes ref (package preload) and removes the older preloads
// of the same node image (one still used by a cluster stays).
func (p *Provider) makePreload(ctx context.Context, ref string, local []string) error {
	c := p.cfg()
	log := p.env.Log
	return log.Run("Preloading "+strings.Join(local, ", ")+" into the node image (once per image change)", func() error {
		res, err := preload.Make(ctx, p.cli, preload.Spec{
			NodeImage: c.NodeImage, Ref: ref, Images: local,
			Builder:       "kubevirtci-preload-" + strings.TrimPrefix(ref, preloadRepo+":"),
			BuilderLabels: map[string]string{preloadLabel: "builder"},
			Labels:        map[string]string{preloadLabel: strings.Join(local, " "), preloadNodeLabel: c.NodeImage},
		})
		if err != nil {
			return err
		}
		log.Debugf("   %s", res)
		p.removeOlderPreloads(ctx, ref)
		return nil
	})
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
