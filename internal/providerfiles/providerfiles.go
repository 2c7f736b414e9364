// Package providerfiles writes the files a cluster leaves for the scripts
// that use it: config-provider-<provider>.sh, which KubeVirt's own scripts
// (make cluster-sync and friends) source.
package providerfiles

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/localregistry"

	"al.essio.dev/pkg/shellescape"
)

// ConfigProvider is the content of config-provider-<provider>.sh. It sets
// exactly the variables KubeVirt's scripts read, with these names:
//
//	master_ip               the API server address, 127.0.0.1
//	kubeconfig              absolute path of the cluster's kubeconfig
//	kubectl                 absolute path of the kubectl copied from the node
//	docker_prefix           where the host pushes images: localhost:<port>/<DOCKER_PREFIX>
//	manifest_docker_prefix  the same images as the nodes pull them: registry:5000/<DOCKER_PREFIX>
//
// Every value is quoted for the shell, so paths with spaces or '$' are safe.
func ConfigProvider(c *config.Config) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by cluster-up for provider %s, cluster %s. Sourced by KubeVirt's scripts.\n", c.Provider, c.ClusterName)
	for _, kv := range [][2]string{
		{"master_ip", "127.0.0.1"},
		{"kubeconfig", c.KubeconfigPath()},
		{"kubectl", c.KubectlHostPath()},
		{"docker_prefix", "localhost:" + strconv.Itoa(c.RegistryHostPort) + "/" + c.DockerPrefix},
		{"manifest_docker_prefix", localregistry.ClusterHost + "/" + c.DockerPrefix},
	} {
		b.WriteString(kv[0] + "=" + shellQuote(kv[1]) + "\n")
	}
	return []byte(b.String())
}

// plainRE: characters that have no meaning inside double quotes.
var plainRE = regexp.MustCompile(`^[A-Za-z0-9@%+=:,./_ -]*$`)

// shellQuote quotes s for a POSIX shell: "s" when nothing in it is special
// inside double quotes (the usual case, and the form the old scripts wrote),
// else as shellescape quotes it.
func shellQuote(s string) string {
	if plainRE.MatchString(s) {
		return `"` + s + `"`
	}
	return shellescape.Quote(s)
}

// Write writes data to path atomically: it writes a temporary file in the
// same folder, sets mode, syncs it and renames it over path, so a reader never
// sees a half-written file. Missing parent folders are created with mode 0755.
func Write(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Chmod, not the umask-filtered creation mode, so that mode is exact
	// (0600 for a kubeconfig, 0755 for kubectl).
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
