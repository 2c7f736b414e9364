package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/nodeimage"
	"github.com/kubevirt/kubevirtci-go/providers"
)

// The image commands build, from Debian packages and Go modules only, the
// kind node image of KUBEVIRT_PROVIDER (Kubernetes v1.22.2 for
// kind-1.22-sriov, v1.36.1 for kind-sriov) and the local registry image
// into the container engine. See docs/images.md.
func init() {
	register(command{
		Name:     "image-node",
		NoConfig: true,
		Help: "build the kind node image of KUBEVIRT_PROVIDER (Kubernetes v1.22.2 for kind-1.22-sriov, v1.36.1 for kind-sriov) from source into the container engine; " +
			"env: KUBEVIRTCI_CACHE_DIR (build cache), KUBEVIRTCI_DEBIAN_MIRROR, KUBEVIRTCI_IMAGE_FORCE=1 (rebuild)",
		Run: func(ctx context.Context, env *Env) error {
			opts, err := imageOptions(ctx, env)
			if err != nil {
				return err
			}
			ref, err := nodeimage.BuildNode(ctx, opts)
			if err != nil {
				return err
			}
			env.Log.Infof("node image: %s (use it with KIND_NODE_IMAGE=%s)", ref, ref)
			return nil
		},
	})
	register(command{
		Name:     "image-registry",
		NoConfig: true,
		Help:     "build the local registry image (distribution v3) from source into the container engine",
		Run: func(ctx context.Context, env *Env) error {
			opts, err := imageOptions(ctx, env)
			if err != nil {
				return err
			}
			ref, err := nodeimage.BuildRegistry(ctx, opts)
			if err != nil {
				return err
			}
			env.Log.Infof("registry image: %s (use it with REGISTRY_IMAGE=%s)", ref, ref)
			return nil
		},
	})
	register(command{
		Name:     "image-components",
		NoConfig: true,
		Help: "build the component images of KUBEVIRT_PROVIDER (multus, sriov-cni, the SR-IOV device plugin and, for kind-sriov, network-resources-injector) from their source archives into the container engine; " +
			"env: " + nodeimage.EnvUpstreamDir + " (the archives' folder, default " + nodeimage.DefaultUpstreamDir + " beside the checkout)",
		Run: func(ctx context.Context, env *Env) error {
			opts, err := imageOptions(ctx, env)
			if err != nil {
				return err
			}
			refs, err := nodeimage.BuildComponents(ctx, opts)
			if err != nil {
				return err
			}
			env.Log.Infof("component images: %s (use them with MULTUS_IMAGE, SRIOV_CNI_IMAGE, SRIOV_DEVICE_PLUGIN_IMAGE, NETWORK_RESOURCES_INJECTOR_IMAGE, or KUBEVIRTCI_SOURCE_IMAGES=true)", strings.Join(refs, " "))
			return nil
		},
	})
}

// imageOptions are the build options of the provider KUBEVIRT_PROVIDER
// names (default kind-1.22-sriov): its description says what its images
// are built from.
func imageOptions(ctx context.Context, env *Env) (nodeimage.Options, error) {
	name := env.Getenv(config.EnvProvider)
	if name == "" {
		name = config.DefaultProvider
	}
	d, err := providers.Lookup(name)
	if err != nil {
		return nodeimage.Options{}, fmt.Errorf("%s=%q: %w", config.EnvProvider, name, err)
	}
	return nodeimage.Options{
		CRI:          env.cri(ctx),
		SourceDir:    env.RepoRoot,
		Runner:       env.Runner,
		Log:          env.Log,
		CacheDir:     env.Getenv("KUBEVIRTCI_CACHE_DIR"),
		DebianMirror: env.Getenv("KUBEVIRTCI_DEBIAN_MIRROR"),
		Force:        env.Getenv("KUBEVIRTCI_IMAGE_FORCE") == "1",
		Getenv:       env.Getenv,
		Node:         d.Images.Node,
		Components:   d.Images.Components,
	}, nil
}
