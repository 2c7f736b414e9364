package imagesync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubevirt/kubevirtci-go/internal/kubeapply"
	"github.com/kubevirt/kubevirtci-go/internal/kubewait"
)

// Deployer applies objects and waits for their rollout. ClusterDeployer is
// the real one; tests use their own.
type Deployer interface {
	Apply(ctx context.Context, objs []*unstructured.Unstructured) error
	Rollout(ctx context.Context, objs []*unstructured.Unstructured, timeout time.Duration) error
}

// Manifest is one decoded object and the file it came from.
type Manifest struct {
	Source string
	Object *unstructured.Unstructured
}

// ManifestFiles expands the SYNC_MANIFESTS entries: a file is taken as is, a
// folder gives its .yaml, .yml and .json files, recursively, in lexical order.
func ManifestFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("SYNC_MANIFESTS: %s does not exist; list manifest files or folders of them", p)
			}
			return nil, fmt.Errorf("SYNC_MANIFESTS: %w", err)
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".yaml", ".yml", ".json":
				if !d.IsDir() {
					found = append(found, path)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("SYNC_MANIFESTS: %w", err)
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("SYNC_MANIFESTS: folder %s holds no .yaml, .yml or .json file", p)
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

// ReadManifests decodes the files in order; a document that does not parse
// fails with file:line. Objects without a namespace get namespace (for
// cluster-scoped kinds the applier drops it again).
func ReadManifests(files []string, namespace string) ([]Manifest, error) {
	var out []Manifest
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("SYNC_MANIFESTS: %w", err)
		}
		objs, err := kubeapply.Decode(r, f)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("SYNC_MANIFESTS: %w", err)
		}
		for _, o := range objs {
			if o.GetNamespace() == "" && namespace != "" {
				o.SetNamespace(namespace)
			}
			out = append(out, Manifest{Source: f, Object: o})
		}
	}
	return out, nil
}

// ClusterDeployer applies with server-side apply (kubeapply) and waits with
// kubewait.Rollout.
type ClusterDeployer struct {
	applier *kubeapply.Applier
	client  kubernetes.Interface
	host    string
}

// FieldManager owns the fields sync applies.
const FieldManager = "kubevirtci-sync"

// NewClusterDeployer connects to the cluster of kubeconfig and checks that
// it answers.
func NewClusterDeployer(ctx context.Context, kubeconfig string) (*ClusterDeployer, error) {
	if _, err := os.Stat(kubeconfig); err != nil {
		return nil, fmt.Errorf("no cluster: %s not found; run `make cluster-up` first", kubeconfig)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.UserAgent = FieldManager
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	if _, err := client.Discovery().ServerVersion(); err != nil {
		return nil, fmt.Errorf("the cluster at %s (kubeconfig %s) does not answer: %v; is it up? Run `make cluster-up`", cfg.Host, kubeconfig, err)
	}
	a, err := kubeapply.NewForConfig(cfg, FieldManager)
	if err != nil {
		return nil, err
	}
	return &ClusterDeployer{applier: a, client: client, host: cfg.Host}, nil
}

// Apply implements Deployer.
func (d *ClusterDeployer) Apply(ctx context.Context, objs []*unstructured.Unstructured) error {
	return d.applier.Apply(ctx, objs)
}

// Rollout implements Deployer.
func (d *ClusterDeployer) Rollout(ctx context.Context, objs []*unstructured.Unstructured, timeout time.Duration) error {
	return kubewait.Rollout(ctx, d.client, objs, timeout)
}
