package main

import (
	"context"
	"os"

	"github.com/kubevirt/kubevirtci-go/providers"
	_ "github.com/kubevirt/kubevirtci-go/providers/all"
)

func provider(env *Env) (providers.Provider, error) {
	return providers.New(env.Config.Provider, providers.Env{
		Config: env.Config,
		Log:    env.Log,
		Runner: env.Runner,
		Getenv: env.Getenv,
	})
}

func init() {
	register(command{Name: "cluster-up", Help: "bring up the cluster of KUBEVIRT_PROVIDER", Run: func(ctx context.Context, env *Env) error {
		p, err := provider(env)
		if err != nil {
			return err
		}
		return p.Up(ctx)
	}})
	register(command{Name: "cluster-down", Help: "delete the cluster and give every NIC back to the host", Run: func(ctx context.Context, env *Env) error {
		p, err := provider(env)
		if err != nil {
			return err
		}
		return p.Down(ctx)
	}})
	register(command{Name: "sync", Help: "push DOCKER_PREFIX/*:DOCKER_TAG images (and SYNC_SOURCES) to the cluster's registry; roll out SYNC_MANIFESTS pinned by digest", Run: func(ctx context.Context, env *Env) error {
		p, err := provider(env)
		if err != nil {
			return err
		}
		return p.Sync(ctx)
	}})
	register(command{Name: "status", Help: "show nodes, registry, kubeconfig and SR-IOV state", Run: func(ctx context.Context, env *Env) error {
		p, err := provider(env)
		if err != nil {
			return err
		}
		return p.Status(ctx, os.Stdout)
	}})
}
