package toolbuild

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, p string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestStale(t *testing.T) {
	root := t.TempDir()
	old := time.Now().Add(-time.Hour)
	for _, f := range []string{"go.mod", "cmd/tool/main.go", "internal/a/a.go", "manifests/m.yaml", "images/node/wrapper"} {
		write(t, filepath.Join(root, f), old)
	}
	for _, d := range []string{".", "cmd", "cmd/tool", "internal", "internal/a", "manifests", "images", "images/node"} {
		os.Chtimes(filepath.Join(root, d), old, old)
	}
	bin := filepath.Join(root, "_out", "bin", "tool")
	if stale, why, err := Stale(root, bin); err != nil || !stale || !strings.Contains(why, "does not exist") {
		t.Fatalf("no binary: %v %q %v", stale, why, err)
	}
	built := time.Now().Add(-time.Minute)
	write(t, bin, built)
	os.Chtimes(filepath.Join(root, "_out"), built, built)
	os.Chtimes(filepath.Join(root, "_out", "bin"), built, built)
	if stale, why, err := Stale(root, bin); err != nil || stale {
		t.Fatalf("fresh binary called stale: %q %v", why, err)
	}
	// Tests, documents and the tool's own output do not count.
	write(t, filepath.Join(root, "internal/a/a_test.go"), time.Now())
	write(t, filepath.Join(root, "README.md"), time.Now())
	os.Chtimes(filepath.Join(root, "internal/a"), old, old)
	os.Chtimes(root, old, old)
	if stale, why, err := Stale(root, bin); err != nil || stale {
		t.Fatalf("a test or a document made it stale: %q %v", why, err)
	}
	// A changed source, an embedded file, a new file (its folder's time),
	// go.mod: each is seen, and the rebuilt binary is fresh again.
	now := time.Now()
	for i, change := range []func(time.Time){
		func(t0 time.Time) { write(t, filepath.Join(root, "internal/a/a.go"), t0) },
		func(t0 time.Time) { write(t, filepath.Join(root, "images/node/wrapper"), t0) },
		func(t0 time.Time) { os.Chtimes(filepath.Join(root, "cmd/tool"), t0, t0) },
		func(t0 time.Time) { write(t, filepath.Join(root, "go.mod"), t0) },
	} {
		at := now.Add(time.Duration(i+1) * time.Minute)
		change(at)
		stale, why, err := Stale(root, bin)
		if err != nil || !stale {
			t.Fatalf("change %d went unseen: %v %v", i, stale, err)
		}
		t.Logf("stale: %s", why)
		write(t, bin, at.Add(time.Second)) // rebuilt
		if stale, why, _ := Stale(root, bin); stale {
			t.Fatalf("after the rebuild of change %d: %s", i, why)
		}
	}
}

// On this module: Stale is cheap (it reads file times only).
func BenchmarkStaleThisModule(b *testing.B) {
	root, _ := filepath.Abs("../..")
	bin := filepath.Join(b.TempDir(), "tool")
	os.WriteFile(bin, nil, 0o755)
	future := time.Now().Add(time.Hour)
	os.Chtimes(bin, future, future)
	for i := 0; i < b.N; i++ {
		if stale, why, err := Stale(root, bin); err != nil || stale {
			b.Fatal(why, err)
		}
	}
}
