package kindsriov

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubevirt/kubevirtci-go/internal/imagesync"
	"github.com/kubevirt/kubevirtci-go/internal/localregistry"
)

// Sync implements providers.Provider: the images matching DOCKER_PREFIX and
// DOCKER_TAG (and SYNC_SOURCES) go to the cluster's registry; with
// SYNC_MANIFESTS the manifests are rolled out, pinned by digest.
func (p *Provider) Sync(ctx context.Context) error {
	if err := p.setup(ctx); err != nil {
		return err
	}
	c := p.cfg()
	if _, err := os.Stat(c.KubeconfigPath()); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no %s cluster named %s is up (%s is missing): run `make cluster-up` first", p.spec.Name, c.ClusterName, c.KubeconfigPath())
	}
	if err := localregistry.WaitServing(ctx, c.RegistryHostPort, 0); err != nil {
		return fmt.Errorf("the cluster's registry does not answer on localhost:%d (is %s running? `make cluster-up` starts it): %w",
			c.RegistryHostPort, c.RegistryContainer(), err)
	}
	o := imagesync.Options{
		CLI:             p.bin,
		Runner:          p.env.Runner,
		Prefix:          c.DockerPrefix,
		Tag:             c.DockerTag,
		Sources:         c.SyncSources,
		Registry:        c.RegistryHostAddress(),
		ClusterRegistry: localregistry.ClusterHost,
		Manifests:       c.SyncManifests,
		RolloutTimeout:  c.ComponentWaitTimeout,
		CacheFile:       filepath.Join(c.StateDir(), "sync-cache.json"),
		Log:             p.env.Log,
	}
	if len(c.SyncManifests) > 0 {
		d, err := imagesync.NewClusterDeployer(ctx, c.KubeconfigPath())
		if err != nil {
			return err
		}
		o.Deployer = d
	}
	res, err := imagesync.Sync(ctx, o)
	if err != nil {
		return err
	}
	p.env.Log.Infof("\nSynced %d image(s) to localhost:%d (%d bytes sent).", len(res.Images), c.RegistryHostPort, res.Sent())
	if len(c.SyncManifests) == 0 {
		p.env.Log.Infof("In the cluster, refer to them by digest:")
		for _, img := range res.Images {
			p.env.Log.Infof("   %s", img.ClusterRef)
		}
	}
	return nil
}
