package nodeimage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kubevirt/kubevirtci-go/images"
)

// rootfsSpec describes a Debian root file system made by debootstrap.
type rootfsSpec struct {
	Name     string
	Packages []string
	// prepare runs once on the fresh tree, before it is marked complete.
	prepare func(ctx context.Context, b *builder, dir string) error
}

func (b *builder) mirror() string {
	if b.o.DebianMirror != "" {
		return b.o.DebianMirror
	}
	return images.DebianMirror
}

// rootfsKey hashes what a tree is made of.
func (b *builder) rootfsKey(s rootfsSpec, extra ...string) string {
	h := newHasher()
	pkgs := append([]string(nil), s.Packages...)
	sort.Strings(pkgs)
	h.add(recipe, s.Name, images.DebianSuite, b.mirror(), strings.Join(pkgs, ","))
	h.add(extra...)
	return h.hex()[:16]
}

// rootfs returns a debootstrap tree (variant minbase) with the spec's
// packages, from the cache when an earlier run made it. extra are more
// inputs of prepare (their change makes a new tree).
func (b *builder) rootfs(ctx context.Context, s rootfsSpec, extra ...string) (string, error) {
	dir := filepath.Join(b.o.CacheDir, "rootfs", s.Name+"-"+b.rootfsKey(s, extra...))
	if _, err := os.Stat(dir + ".complete"); err == nil {
		b.o.Log.Debugf("rootfs %s: reusing %s", s.Name, dir)
		pruneSiblings(filepath.Dir(dir), s.Name+"-", filepath.Base(dir))
		return dir, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("debootstrap needs root to make the %s root file system (run the build as root)", s.Name)
	}
	if _, err := b.o.run(ctx, "rm", "-rf", dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	args := []string{"--variant=minbase", "--components=main"}
	if len(s.Packages) > 0 {
		args = append(args, "--include="+strings.Join(s.Packages, ","))
	}
	args = append(args, images.DebianSuite, dir, b.mirror())
	if _, err := b.o.run(ctx, "debootstrap", args...); err != nil {
		return "", err
	}
	if s.prepare != nil {
		if err := s.prepare(ctx, b, dir); err != nil {
			return "", fmt.Errorf("preparing the %s root file system: %w", s.Name, err)
		}
	}
	if err := os.WriteFile(dir+".complete", nil, 0o644); err != nil {
		return "", err
	}
	pruneSiblings(filepath.Dir(dir), s.Name+"-", filepath.Base(dir))
	return dir, nil
}

// trimTree removes what a container image does not need: apt's lists and
// archives, documentation, manuals and translations.
func trimTree(ctx context.Context, b *builder, dir string) error {
	for _, p := range []string{
		"var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
		"usr/share/info", "usr/share/locale", "var/log/bootstrap.log",
	} {
		full := filepath.Join(dir, p)
		if err := os.RemoveAll(full); err != nil {
			return err
		}
	}
	for _, p := range []string{"var/cache/apt/archives/partial", "var/lib/apt/lists/partial", "usr/share/doc", "usr/share/man"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// removeGlob removes the files matching pattern inside dir.
func removeGlob(dir, pattern string) error {
	matches, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		return err
	}
	for _, m := range matches {
		if err := os.RemoveAll(m); err != nil {
			return err
		}
	}
	return nil
}
