package imagesync

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewClusterDeployerNoCluster(t *testing.T) {
	missing := filepath.Join(t.TempDir(), ".kubeconfig")
	_, err := NewClusterDeployer(context.Background(), missing)
	if err == nil || !strings.Contains(err.Error(), "make cluster-up") || !strings.Contains(err.Error(), missing) {
		t.Fatalf("got %v", err)
	}

	// A kubeconfig whose API server is gone.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := l.Addr().String()
	l.Close()
	kc := filepath.Join(t.TempDir(), ".kubeconfig")
	must(t, os.WriteFile(kc, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://%s"}}]
users: [{name: u, user: {}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, addr)), 0o600))
	_, err = NewClusterDeployer(context.Background(), kc)
	if err == nil || !strings.Contains(err.Error(), "does not answer") || !strings.Contains(err.Error(), "make cluster-up") {
		t.Fatalf("got %v", err)
	}
}

func TestManifestFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"b.yaml", "a.yml", "sub/c.json", "notes.md", "sub/d.YAML"} {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, f), nil, 0o644))
	}
	single := filepath.Join(dir, "notes.md")
	got, err := ManifestFiles([]string{dir, single})
	must(t, err)
	var rel []string
	for _, g := range got {
		r, _ := filepath.Rel(dir, g)
		rel = append(rel, r)
	}
	if strings.Join(rel, " ") != "a.yml b.yaml sub/c.json sub/d.YAML notes.md" {
		t.Errorf("got %v", rel)
	}
	if _, err := ManifestFiles([]string{filepath.Join(dir, "nope")}); err == nil || !strings.Contains(err.Error(), "SYNC_MANIFESTS") {
		t.Errorf("got %v", err)
	}
	empty := t.TempDir()
	if _, err := ManifestFiles([]string{empty}); err == nil || !strings.Contains(err.Error(), "holds no .yaml") {
		t.Errorf("got %v", err)
	}
}
