package kindsriov

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/components"
	"github.com/kubevirt/kubevirtci-go/internal/config"
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
	return p.deps.deploy(ctx, st.rest, p.componentParams(st))
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
	err := p.deps.waitComponents(ctx, st.client, st.rest, p.componentParams(st), components.WaitOptions{
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

// Component images the local engine has are loaded into every node, as
// `kind load docker-image` does; the nodes pull the others from their
// registries as usual.
//
// Why load from the engine rather than push to the cluster's registry or
// preload into the node image: the image settings keep their meaning (a
// name the nodes run, unchanged in the manifests), a component image built
// here (`make images`, or a developer's own build of multus) reaches the
// nodes without any registry, and the node image stays independent of the
// components' versions.
//
// It costs one `save` and one `ctr images import` per node (about 190 MB
// for the three images built here), so it runs in the background: the
// save while kind creates the cluster, the imports while the steps after
// it run; the step before the deployment waits for it (see docs/figures.md).

// imageLoad is the background loading of the component images.
type imageLoad struct {
	*background
	created chan struct{} // closed once the nodes exist (st.nodes is set)
	err     error
	local   []string // the images loaded
	took    time.Duration
}

// startLoadingImages starts the background load. It runs before the
// cluster is created, so that saving the images overlaps with kind.
func (p *Provider) startLoadingImages(ctx context.Context, st *upState) error {
	l := &imageLoad{created: make(chan struct{})}
	st.imageLoad = l
	l.background = goBackground(ctx, func(ctx context.Context) {
		start := time.Now()
		l.local, l.err = p.loadComponentImages(ctx, l.created, func() []string { return st.nodes })
		l.took = time.Since(start)
	})
	return nil
}

// waitLoadingImages waits for the background load to end.
func (p *Provider) waitLoadingImages(ctx context.Context, st *upState) error {
	l := st.imageLoad
	if err := l.wait(ctx); err != nil {
		return err
	}
	if l.err != nil {
		return l.err
	}
	st.loadedImages = l.local
	if len(l.local) > 0 {
		p.env.Log.Debugf("   %s loaded into %s in %s (in the background)", strings.Join(l.local, ", "), strings.Join(st.nodes, ", "), l.took.Round(100*time.Millisecond))
	}
	return nil
}

// nodesReady lets the background load import into the nodes: they exist
// and their containerd will not be restarted.
func (st *upState) nodesReady() {
	if l := st.imageLoad; l != nil {
		select {
		case <-l.created:
		default:
			close(l.created)
		}
	}
}

// stopLoadingImages ends a background load that is still running (Up
// failed before waiting for it).
func (st *upState) stopLoadingImages() {
	if l := st.imageLoad; l != nil {
		l.stop()
	}
}

// loadComponentImages saves the component images that the local engine has
// into one archive and, once created is closed, imports it into each of
// nodes(). It returns the images it loaded. The import does not unpack
// the layers: containerd unpacks an image when a container first needs it,
// so a node unpacks only the components that run there (the control plane
// only multus), and not while the control plane is coming up.
func (p *Provider) loadComponentImages(ctx context.Context, created <-chan struct{}, nodes func() []string) ([]string, error) {
	c := p.cfg()
	var local []string
	seen := map[string]bool{}
	for _, ref := range []string{c.MultusImage, c.SRIOVCNIImage, c.SRIOVDevicePluginImage, c.InjectorImage} {
		if ref == "" || seen[ref] {
			continue
		}
		seen[ref] = true
		ok, err := p.cli.ImageExists(ctx, ref)
		if err != nil {
			return nil, err
		}
		if ok {
			local = append(local, ref)
		} else {
			p.env.Log.Debugf("   %s is not in %s: the nodes pull it", ref, p.cli.Name())
		}
	}
	if len(local) == 0 {
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "kubevirtci-images-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	archive := filepath.Join(dir, "components.tar")
	if err := p.cli.SaveImages(ctx, archive, local...); err != nil {
		return nil, err
	}
	select {
	case <-created:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return local, inEachNode(ctx, nodes(), func(ctx context.Context, n string) error {
		f, err := os.Open(archive)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := p.cli.ExecInput(ctx, f, n, "ctr", "--namespace=k8s.io", "images", "import", "--all-platforms", "--no-unpack", "-"); err != nil {
			return fmt.Errorf("loading %s into node %s: %w", strings.Join(local, ", "), n, err)
		}
		return nil
	})
}
