package nodeimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
)

// fakeSources writes an archive for every component whose content is its
// name, and returns the folder and sources pinned to those archives.
func fakeSources(t *testing.T) (string, []images.UpstreamSource) {
	t.Helper()
	dir := t.TempDir()
	var srcs []images.UpstreamSource
	for _, s := range ComponentSources {
		data := []byte("archive of " + s.Project)
		if err := os.WriteFile(filepath.Join(dir, s.Archive()), data, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		s.SHA256 = hex.EncodeToString(sum[:])
		srcs = append(srcs, s)
	}
	return dir, srcs
}

func TestCheckArchive(t *testing.T) {
	dir, srcs := fakeSources(t)
	for _, s := range srcs {
		p, err := checkArchive(dir, s)
		if err != nil {
			t.Errorf("%s: %v", s.Project, err)
		}
		if p != filepath.Join(dir, s.Archive()) {
			t.Errorf("%s: path %s", s.Project, p)
		}
	}

	t.Run("missing", func(t *testing.T) {
		s := srcs[0]
		_, err := checkArchive(t.TempDir(), s)
		var ae *ArchiveError
		if !errors.As(err, &ae) || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("want an ArchiveError wrapping not-exist, got %v", err)
		}
		msg := err.Error()
		for _, want := range []string{EnvUpstreamDir + "=", s.Archive(), s.SHA256, "git archive --prefix=" + s.Project + "-" + s.Tag + "/"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error lacks %q:\n%s", want, msg)
			}
		}
	})

	t.Run("wrong hash", func(t *testing.T) {
		s := srcs[1]
		if err := os.WriteFile(filepath.Join(dir, s.Archive()), []byte("something else"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := checkArchive(dir, s)
		var ae *ArchiveError
		if !errors.As(err, &ae) || ae.Got == "" || ae.Got == s.SHA256 {
			t.Fatalf("want an ArchiveError with the archive's own sum, got %v", err)
		}
		msg := err.Error()
		for _, want := range []string{ae.Got, "want " + s.SHA256, s.Commit, EnvUpstreamDir} {
			if !strings.Contains(msg, want) {
				t.Errorf("error lacks %q:\n%s", want, msg)
			}
		}
	})
}

// CheckArchives reports every bad archive at once, and the pinned sums
// are those of the project's real archives (a fake folder fails them all).
func TestCheckArchivesReportsAll(t *testing.T) {
	dir, _ := fakeSources(t)
	_, err := CheckArchives(dir)
	if err == nil {
		t.Fatal("archives with other content passed the pinned sha256 check")
	}
	for _, s := range ComponentSources {
		if !strings.Contains(err.Error(), s.Archive()) {
			t.Errorf("error does not name %s:\n%v", s.Archive(), err)
		}
	}
}

// BuildComponents checks the archives before it runs anything.
func TestBuildComponentsChecksArchivesFirst(t *testing.T) {
	f := &cmdrun.Fake{}
	_, err := BuildComponents(context.Background(), Options{CRI: "docker", Runner: f, UpstreamDir: t.TempDir(), CacheDir: t.TempDir()})
	var ae *ArchiveError
	if !errors.As(err, &ae) {
		t.Fatalf("want an ArchiveError, got %v", err)
	}
	if len(f.Calls) != 0 {
		t.Errorf("commands ran before the archives were checked: %v", f.Calls)
	}
}

func TestUpstreamDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, c := range []struct {
		opt  string
		env  map[string]string
		want string
	}{
		{"", nil, "/src/shared/upstream"},
		{"", map[string]string{EnvUpstreamDir: "/mirror/sources"}, "/mirror/sources"},
		{"", map[string]string{EnvUpstreamDir: "third_party"}, "/src/checkout/third_party"},
		{"/opt/archives", map[string]string{EnvUpstreamDir: "/ignored"}, "/opt/archives"},
	} {
		o := Options{SourceDir: "/src/checkout", UpstreamDir: c.opt, Getenv: env(c.env)}
		if got := o.upstreamDir(); got != c.want {
			t.Errorf("option %q env %v: %s, want %s", c.opt, c.env, got, c.want)
		}
	}
}

func TestComponentBuilds(t *testing.T) {
	srcs := map[string]string{}
	for _, s := range ComponentSources {
		srcs[s.Project] = "/cache/src/" + s.Project
	}
	got := map[string]component{}
	for _, c := range componentBuilds(srcs) {
		got[c.Name] = c
		if c.Dir != srcs[c.Name] || c.SourceKey == "" {
			t.Errorf("%s: dir %q key %q", c.Name, c.Dir, c.SourceKey)
		}
	}
	// The binaries sit where the upstream images and entrypoints expect them.
	for name, want := range map[string]string{"multus-cni": "multus", "sriov-cni": "sriov", "sriov-network-device-plugin": "sriovdp"} {
		c := got[name]
		if b := c.binary(c.Packages[0]); b != want {
			t.Errorf("%s: binary %q, want %q", name, b, want)
		}
	}
	for _, name := range []string{"multus-cni", "sriov-network-device-plugin"} {
		if f := strings.Join(got[name].Flags, " "); !strings.Contains(f, "-mod=vendor") || !strings.Contains(f, "no_openssl") {
			t.Errorf("%s: flags %q, want its vendor folder and the no_openssl tag", name, f)
		}
	}
	b := &builder{o: Options{SourceDir: "/nowhere"}, goVer: "go1.26"}
	m := got["multus-cni"]
	h1, err := b.componentHash(&m)
	if err != nil {
		t.Fatal(err)
	}
	m.SourceKey = "another archive"
	if h2, _ := b.componentHash(&m); h2 == h1 {
		t.Error("hash did not change with the source archive")
	}
	m.SourceKey = ""
	if _, err := b.componentHash(&m); err == nil {
		t.Error("a component from an unpacked archive without a SourceKey was hashed")
	}
}
