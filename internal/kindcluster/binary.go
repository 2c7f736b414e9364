package kindcluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
)

// Binary drives a kind release through its command line, for KIND_VERSION
// values other than the compiled-in library.
type Binary struct {
	Path    string
	Engine  string // docker or podman: passed as KIND_EXPERIMENTAL_PROVIDER
	Run     cmdrun.Runner
	version string
}

var versionRE = regexp.MustCompile(`kind v?([0-9]+\.[0-9]+\.[0-9]+[^ ]*)`)

// ParseVersion extracts the version from `kind version` output
// ("kind v0.11.1 go1.16.4 linux/amd64").
func ParseVersion(out string) (string, bool) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// FindBinary returns a kind binary reporting exactly version: a `kind` on
// the PATH when it reports that version, else one previously built into
// cacheDir, else one built now with `go install sigs.k8s.io/kind@v<version>`
// into cacheDir. It fails when none of these gives that version.
func FindBinary(ctx context.Context, version, engine, cacheDir string, run cmdrun.Runner, lookPath func(string) (string, error)) (*Binary, error) {
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	var seen []string
	check := func(path string) (*Binary, bool) {
		out, err := run.Run(ctx, nil, path, "version")
		if err != nil {
			seen = append(seen, fmt.Sprintf("%s: %v", path, err))
			return nil, false
		}
		got, ok := ParseVersion(string(out))
		if !ok || got != version {
			seen = append(seen, fmt.Sprintf("%s reports %q", path, strings.TrimSpace(string(out))))
			return nil, false
		}
		return &Binary{Path: path, Engine: engine, Run: run, version: version}, true
	}
	if p, err := lookPath("kind"); err == nil {
		if b, ok := check(p); ok {
			return b, nil
		}
	}
	dir := filepath.Join(cacheDir, "kind-v"+version)
	built := filepath.Join(dir, "kind")
	if _, err := statFile(built); err == nil {
		if b, ok := check(built); ok {
			return b, nil
		}
	}
	goBin, err := lookPath("go")
	if err != nil {
		return nil, fmt.Errorf("KIND_VERSION=%s differs from the compiled-in kind %s, no kind on the PATH reports it (%s) and go is not installed to build it; unset KIND_VERSION to use %s, or put kind v%s on the PATH",
			version, LibraryVersion(), strings.Join(seen, "; "), LibraryVersion(), version)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	env := cmdrun.Env{Runner: run, Env: []string{"GOBIN=" + dir, "CGO_ENABLED=0"}}
	if _, err := env.Run(ctx, nil, goBin, "install", "sigs.k8s.io/kind@v"+version); err != nil {
		return nil, fmt.Errorf("KIND_VERSION=%s: building kind v%s from the Go module proxy failed (unset KIND_VERSION to use the compiled-in kind %s): %w", version, version, LibraryVersion(), err)
	}
	if b, ok := check(built); ok {
		return b, nil
	}
	return nil, fmt.Errorf("KIND_VERSION=%s: the kind built into %s does not report that version: %s", version, dir, strings.Join(seen, "; "))
}

// Version implements Kind.
func (b *Binary) Version() string { return b.version }

func (b *Binary) cmd(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	r := cmdrun.Env{Runner: b.Run, Env: []string{"KIND_EXPERIMENTAL_PROVIDER=" + b.Engine}}
	var in *bytes.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
		return r.Run(ctx, in, b.Path, args...)
	}
	return r.Run(ctx, nil, b.Path, args...)
}

// Create implements Kind.
func (b *Binary) Create(ctx context.Context, name string, config []byte, kubeconfigPath string) error {
	_, err := b.cmd(ctx, config, "create", "cluster", "--name", name, "--retain", "--config", "-", "--kubeconfig", kubeconfigPath)
	return err
}

// Delete implements Kind.
func (b *Binary) Delete(ctx context.Context, name, kubeconfigPath string) error {
	_, err := b.cmd(ctx, nil, "delete", "cluster", "--name", name, "--kubeconfig", kubeconfigPath)
	return err
}

// Exists implements Kind.
func (b *Binary) Exists(ctx context.Context, name string) (bool, error) {
	out, err := b.cmd(ctx, nil, "get", "clusters")
	if err != nil {
		return false, err
	}
	for _, n := range strings.Fields(string(out)) {
		if n == name {
			return true, nil
		}
	}
	return false, nil
}

// KubeConfig implements Kind.
func (b *Binary) KubeConfig(ctx context.Context, name string) ([]byte, error) {
	return b.cmd(ctx, nil, "get", "kubeconfig", "--name", name)
}

// Nodes implements Kind.
func (b *Binary) Nodes(ctx context.Context, name string) ([]string, error) {
	out, err := b.cmd(ctx, nil, "get", "nodes", "--name", name)
	if err != nil {
		return nil, err
	}
	var nodes []string
	for _, n := range strings.Fields(string(out)) {
		if strings.HasPrefix(n, name+"-") {
			nodes = append(nodes, n)
		}
	}
	return nodes, nil
}

var _ Kind = (*Binary)(nil)
