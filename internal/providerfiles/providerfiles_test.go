package providerfiles

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubevirt/kubevirtci-go/internal/config"
)

func load(t *testing.T, repo string, kv ...string) *config.Config {
	t.Helper()
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	c, err := config.Load(func(k string) string { return m[k] }, repo, func(string, bool) (config.Defaults, error) {
		return config.Defaults{NodeImage: "kindest/node:v1.22.2"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConfigProviderContent(t *testing.T) {
	got := string(ConfigProvider(load(t, "/src/kubevirtci")))
	want := `# Written by cluster-up for provider kind-1.22-sriov, cluster sriov. Sourced by KubeVirt's scripts.
master_ip="127.0.0.1"
kubeconfig="/src/kubevirtci/_ci-configs/kind-1.22-sriov/.kubeconfig"
kubectl="/src/kubevirtci/_ci-configs/kind-1.22-sriov/.kubectl"
docker_prefix="localhost:5000/kubevirt"
manifest_docker_prefix="registry:5000/kubevirt"
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}

	got = string(ConfigProvider(load(t, "/src/kubevirtci", "CLUSTER_NAME", "sriov2", "DOCKER_PREFIX", "me/kv")))
	for _, line := range []string{`docker_prefix="localhost:5001/me/kv"`, `manifest_docker_prefix="registry:5000/me/kv"`} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("second cluster: no line %s in\n%s", line, got)
		}
	}
}

// source runs bash, sources the file and prints the variables, one a line.
func source(t *testing.T, file string) []string {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not found")
	}
	out, err := exec.Command(bash, "--norc", "--noprofile", "-c",
		`set -eu; source "$1"; printf '%s\n' "$master_ip" "$kubeconfig" "$kubectl" "$docker_prefix" "$manifest_docker_prefix"`,
		"bash", file).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

func TestSourcedByBash(t *testing.T) {
	for _, repo := range []string{
		t.TempDir(),
		filepath.Join(t.TempDir(), `odd dir $HOME "q" 'sq' `+"`date`"+` \ ; #x`),
	} {
		c := load(t, repo, "HOST_PORT", "5005")
		path := c.ConfigProviderPath()
		if err := Write(path, ConfigProvider(c), 0o644); err != nil {
			t.Fatal(err)
		}
		got := source(t, path)
		want := []string{"127.0.0.1", c.KubeconfigPath(), c.KubectlHostPath(), "localhost:5005/kubevirt", "registry:5000/kubevirt"}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("repo %q: bash read\n%q\nwant\n%q", repo, got, want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":               `""`,
		"/a/b c":         `"/a/b c"`,
		"localhost:5000": `"localhost:5000"`,
		"$x":             `'$x'`,
		"it's":           `'it'"'"'s'`,
		"a\nb":           "'a\nb'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", ".kubeconfig")
	if err := Write(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	assertFile(t, path, "one", 0o600)
	for _, d := range []string{filepath.Join(dir, "a"), filepath.Join(dir, "a", "b")} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v", d, fi.Mode(), err)
		}
	}
	// Overwrite with another mode: both content and mode change.
	if err := Write(path, []byte("two"), 0o755); err != nil {
		t.Fatal(err)
	}
	assertFile(t, path, "two", 0o755)
	// No temporary file is left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("folder holds %v, want only .kubeconfig", entries)
	}
	// A parent that is a file fails with the path in the message.
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Write(filepath.Join(blocker, "x"), []byte("x"), 0o644)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(blocker, "x")) {
		t.Errorf("Write under a file: %v", err)
	}
	// Renaming onto a folder fails and leaves no temporary file.
	target := filepath.Join(dir, "adir")
	if err := os.MkdirAll(filepath.Join(target, "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(target, []byte("x"), 0o644); err == nil {
		t.Error("Write over a non-empty folder succeeded")
	}
	matches, _ := filepath.Glob(filepath.Join(dir, ".adir.tmp-*"))
	if len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

func assertFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != content {
		t.Errorf("%s: %q %v, want %q", path, b, err, content)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
	}
}
