package kindsriov

// The files step: the kubeconfig's companions a user and KubeVirt's
// scripts need (kubectl, config-provider), and their removal.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/providerfiles"
)

func (p *Provider) writeFiles(ctx context.Context, st *upState) error {
	c := p.cfg()
	st.made[madeFiles] = true
	tmp := c.KubectlHostPath() + ".tmp"
	cached := p.kubectlCachePath(ctx)
	if cached == "" || copyFile(cached, tmp) != nil {
		src, err := p.kubectlInNode(ctx)
		if err != nil {
			return err
		}
		if err := p.cli.CopyFrom(ctx, c.ControlPlaneNode(), src, tmp); err != nil {
			return fmt.Errorf("copying kubectl out of %s: %w", c.ControlPlaneNode(), err)
		}
		if cached != "" {
			b, err := os.ReadFile(tmp)
			if err == nil {
				err = providerfiles.Write(cached, b, 0o755)
			}
			if err != nil {
				p.env.Log.Debugf("   not caching kubectl: %v", err)
			}
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, c.KubectlHostPath()); err != nil {
		return err
	}
	return providerfiles.Write(c.ConfigProviderPath(), providerfiles.ConfigProvider(c), 0o644)
}

// removeFiles is the undo of writeFiles.
func (p *Provider) removeFiles(ctx context.Context) error {
	c := p.cfg()
	return removeAll(c.KubectlHostPath(), c.KubectlHostPath()+".tmp", c.ConfigProviderPath())
}

// removeFilesAndDir removes files, then the cluster's folder and its
// parent when nothing else is left in them.
func (p *Provider) removeFilesAndDir(files ...string) error {
	if err := removeAll(files...); err != nil {
		return err
	}
	c := p.cfg()
	// The folders too, up to the checkout's _ci-configs, when nothing else
	// is left in them.
	dirs := []string{c.StateDir(), c.ConfigPath}
	if parent := filepath.Dir(c.ConfigPath); filepath.Base(parent) == "_ci-configs" {
		dirs = append(dirs, parent)
	}
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			p.env.Log.Debugf("keeping %s: %v", d, err)
			break
		}
	}
	return nil
}

func removeAll(files ...string) error {
	var errs []error
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// kubectlCachePath is where the kubectl of the node image is kept between
// cluster-ups (in the image builds' cache folder, by the node image's ID
// and KUBECTL_PATH), so that a cluster-up copies it out of a node only the
// first time; "" when the ID is not known.
func (p *Provider) kubectlCachePath(ctx context.Context) string {
	c := p.cfg()
	id, err := p.cli.ImageID(ctx, c.NodeImage)
	if err != nil || id == "" {
		return ""
	}
	h := sha256.Sum256([]byte(id + "\n" + c.KubectlPath))
	return filepath.Join(filepath.Dir(p.kindBinDir()), "kubectl", fmt.Sprintf("%x", h[:12]), "kubectl")
}

// copyFile copies src to dst (a new file).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// kubectlInNode finds kubectl in the control-plane node: KUBECTL_PATH when
// set, else the usual locations. Symlinks are resolved so that the real
// binary is copied.
func (p *Provider) kubectlInNode(ctx context.Context) (string, error) {
	c := p.cfg()
	candidates := []string{"/usr/bin/kubectl", "/bin/kubectl", "/usr/local/bin/kubectl"}
	if c.KubectlPath != "" {
		candidates = []string{c.KubectlPath}
	}
	for _, path := range candidates {
		out, err := p.cli.Exec(ctx, c.ControlPlaneNode(), "readlink", "-e", path)
		if err == nil {
			return strings.TrimSpace(string(out)), nil
		}
	}
	if c.KubectlPath != "" {
		return "", fmt.Errorf("%s=%s: no such file in node %s; unset it to probe the usual locations, or give kubectl's path inside the node image", config.EnvKubectlPath, c.KubectlPath, c.ControlPlaneNode())
	}
	return "", fmt.Errorf("kubectl not found in node %s at %s; set %s to its path inside the node image", c.ControlPlaneNode(), strings.Join(candidates, ", "), config.EnvKubectlPath)
}

// checkFolder makes sure the cluster's folder (under KUBEVIRTCI_CONFIG_PATH)
// can be made and written, before anything is created: it makes it, writes
// a file there and removes both again when they were not there before.
func checkFolder(dir string) error {
	var made []string // the folders this check creates, deepest first
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return folderError(dir, err)
		}
		made = append(made, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	defer func() {
		for _, d := range made {
			os.Remove(d)
		}
	}()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return folderError(dir, err)
	}
	f, err := os.CreateTemp(dir, ".kubevirtci-probe-")
	if err != nil {
		return folderError(dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

func folderError(dir string, err error) error {
	return fmt.Errorf("%s: the cluster's files cannot be written to %s: %w; set %s to a folder you can write (default: _ci-configs in the checkout)",
		config.EnvConfigPath, dir, err, config.EnvConfigPath)
}
