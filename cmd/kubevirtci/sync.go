package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/kubevirt/kubevirtci-go/internal/imagesync"
)

func init() {
	register(command{
		Name: "sync",
		Help: "push DOCKER_PREFIX/*:DOCKER_TAG images (and SYNC_SOURCES) to the cluster registry; apply SYNC_MANIFESTS pinned by digest",
		Run: func(ctx context.Context, env *Env) error {
			cfg := env.Config
			o := imagesync.Options{
				CLI:            env.CRI,
				Runner:         env.Runner,
				Prefix:         cfg.DockerPrefix,
				Tag:            cfg.DockerTag,
				Sources:        cfg.SyncSources,
				Registry:       cfg.RegistryHostAddress(),
				Manifests:      cfg.SyncManifests,
				RolloutTimeout: cfg.ComponentWaitTimeout,
				CacheFile:      syncCacheFile(),
				Log:            env.Log,
			}
			if len(o.Manifests) > 0 {
				d, err := imagesync.NewClusterDeployer(ctx, cfg.KubeconfigPath())
				if err != nil {
					return err
				}
				o.Deployer = d
			}
			res, err := imagesync.Sync(ctx, o)
			if err != nil {
				return err
			}
			if len(o.Manifests) == 0 {
				env.Log.Infof("In the cluster, refer to the images by digest:")
				for _, img := range res.Images {
					env.Log.Infof("   %s", img.ClusterRef)
				}
			}
			return nil
		},
	})
}

// syncCacheFile is where sync keeps its hints between runs (see
// imagesync.Options.CacheFile); "" when the user has no cache folder.
func syncCacheFile() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "kubevirtci", "sync-cache.json")
}
