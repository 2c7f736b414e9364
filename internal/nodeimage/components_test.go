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

// fakeSources writes an archive for every component of both sets whose
// content is its name and tag, and returns the folder and sources pinned to
// those archives.
func fakeSources(t *testing.T) (string, []images.UpstreamSource) {
	t.Helper()
	dir := t.TempDir()
	var srcs []images.UpstreamSource
	for _, s := range append(images.Components122.Sources(), images.Components136.Sources()...) {
		data := []byte("archive of " + s.Project + " " + s.Tag)
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

// CheckArchives reports every bad archive of the set at once, and the
// pinned sums are those of the project's real archives (a fake folder fails
// them all).
func TestCheckArchivesReportsAll(t *testing.T) {
	dir, _ := fakeSources(t)
	for _, set := range []images.Components{images.Components122, images.Components136} {
		_, err := CheckArchives(dir, set)
		if err == nil {
			t.Fatal("archives with other content passed the pinned sha256 check")
		}
		for _, s := range set.Sources() {
			if !strings.Contains(err.Error(), s.Archive()) {
				t.Errorf("error does not name %s:\n%v", s.Archive(), err)
			}
		}
	}
	// Only the set's archives are checked.
	_, err := CheckArchives(dir, images.Components122)
	if strings.Contains(err.Error(), images.NetworkResourcesInjector19.Archive()) {
		t.Errorf("the set without the injector checked its archive:\n%v", err)
	}
}

// The pinned archives check out where they are (the project's CI has them;
// elsewhere the test skips).
func TestCheckArchivesReal(t *testing.T) {
	o := Options{SourceDir: "../.."}
	dir := o.upstreamDir()
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("no source archives here (%v)", err)
	}
	for _, set := range []images.Components{images.Components122, images.Components136} {
		paths, err := CheckArchives(dir, set)
		if err != nil {
			t.Fatal(err)
		}
		if len(paths) != len(set.Sources()) {
			t.Errorf("%d archives for %d sources", len(paths), len(set.Sources()))
		}
	}
}

func TestComponentImages(t *testing.T) {
	if got, want := strings.Join(ComponentImages(images.Components122), " "),
		"localhost/kubevirtci-multus-cni:v3.8-src localhost/kubevirtci-sriov-cni:v2.7.0-src localhost/kubevirtci-sriov-network-device-plugin:v3.4.0-src"; got != want {
		t.Errorf("Components122: %s, want %s", got, want)
	}
	if got, want := strings.Join(ComponentImages(images.Components136), " "),
		"localhost/kubevirtci-multus-cni:v3.8-src localhost/kubevirtci-sriov-cni:v2.9.0-src localhost/kubevirtci-sriov-network-device-plugin:v3.9.0-src localhost/kubevirtci-network-resources-injector:v1.9.0-src"; got != want {
		t.Errorf("Components136: %s, want %s", got, want)
	}
	var o Options
	if o.components() != images.Components122 {
		t.Error("zero Options.Components is not images.Components122")
	}
	o.Components = images.Components136
	if o.components() != images.Components136 {
		t.Error("Options.Components is not used")
	}
}

// BuildComponents checks the archives before it runs anything, for either set.
func TestBuildComponentsChecksArchivesFirst(t *testing.T) {
	for _, set := range []images.Components{{}, images.Components136} {
		f := &cmdrun.Fake{}
		_, err := BuildComponents(context.Background(), Options{CRI: "docker", Runner: f, UpstreamDir: t.TempDir(), CacheDir: t.TempDir(), Components: set})
		var ae *ArchiveError
		if !errors.As(err, &ae) {
			t.Fatalf("want an ArchiveError, got %v", err)
		}
		if len(f.Calls) != 0 {
			t.Errorf("commands ran before the archives were checked: %v", f.Calls)
		}
		if set.Injector.Project != "" && !strings.Contains(err.Error(), set.Injector.Archive()) {
			t.Errorf("error does not name %s:\n%v", set.Injector.Archive(), err)
		}
	}
}

// A source without a build recipe fails before anything else.
func TestBuildComponentsUnknownSource(t *testing.T) {
	set := images.Components136
	set.SRIOVCNI.Tag = "v9.9.9"
	f := &cmdrun.Fake{}
	_, err := BuildComponents(context.Background(), Options{CRI: "docker", Runner: f, UpstreamDir: t.TempDir(), CacheDir: t.TempDir(), Components: set})
	if err == nil || !strings.Contains(err.Error(), "sriov-cni v9.9.9") || !strings.Contains(err.Error(), "goFlags") {
		t.Fatalf("want an error naming sriov-cni v9.9.9 and goFlags, got %v", err)
	}
	if len(f.Calls) != 0 {
		t.Errorf("commands ran: %v", f.Calls)
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
	for _, set := range []images.Components{images.Components122, images.Components136} {
		srcs := map[string]string{}
		for _, s := range set.Sources() {
			srcs[s.Project] = "/cache/src/" + s.Project
		}
		builds, err := componentBuilds(set, srcs)
		if err != nil {
			t.Fatal(err)
		}
		if len(builds) != len(set.Sources()) {
			t.Fatalf("%d builds for %d sources", len(builds), len(set.Sources()))
		}
		got := map[string]component{}
		for i, s := range set.Sources() {
			c := builds[i]
			got[s.Project] = c
			if c.Name != s.Project+"-"+s.Tag || c.Dir != srcs[s.Project] || c.SourceKey != s.SHA256 {
				t.Errorf("%s: name %q dir %q key %q", s.Project, c.Name, c.Dir, c.SourceKey)
			}
		}
		// The binaries sit where the upstream images and entrypoints expect them.
		for name, want := range map[string]string{"multus-cni": "multus", "sriov-cni": "sriov", "sriov-network-device-plugin": "sriovdp"} {
			c := got[name]
			if b := c.binary(c.Packages[0]); b != want {
				t.Errorf("%s: binary %q, want %q", name, b, want)
			}
		}
		if c, ok := got["network-resources-injector"]; ok {
			var bins []string
			for _, p := range c.Packages {
				bins = append(bins, c.binary(p))
			}
			if strings.Join(bins, " ") != "webhook installer" {
				t.Errorf("injector binaries %v, want webhook and installer", bins)
			}
		}
		for name, c := range got {
			if f := strings.Join(c.Flags, " "); name != "sriov-cni" || set.SRIOVCNI.Tag != "v2.7.0" {
				if !strings.Contains(f, "no_openssl") {
					t.Errorf("%s: flags %q, want the no_openssl tag of its build script", name, f)
				}
			}
		}
	}
	// Sources with a vendor folder build from it; the newer ones from the
	// module proxy.
	for src, vendored := range map[images.UpstreamSource]bool{
		images.Multus: true, images.SRIOVDevicePlugin34: true,
		images.SRIOVCNI27: false, images.SRIOVCNI29: false, images.SRIOVDevicePlugin39: false, images.NetworkResourcesInjector19: false,
	} {
		f := strings.Join(goFlags[src.Project+" "+src.Tag], " ")
		if strings.Contains(f, "-mod=vendor") != vendored {
			t.Errorf("%s %s: flags %q, vendored %v", src.Project, src.Tag, f, vendored)
		}
	}

	builds, _ := componentBuilds(images.Components122, map[string]string{"multus-cni": "/cache/src/multus-cni"})
	b := &builder{o: Options{SourceDir: "/nowhere"}, goVer: "go1.26"}
	m := builds[0]
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

// Each component image has its own inputs: the image two sets share
// (multus v3.8) has the same inputs in both, the others differ.
func TestComponentInputs(t *testing.T) {
	b := &builder{o: Options{SourceDir: "../.."}, goVer: "go1.26"}
	in := func(s images.UpstreamSource) string {
		h, err := b.componentInputs(s)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if in(images.Components122.Multus) != in(images.Components136.Multus) {
		t.Error("multus v3.8 has other inputs in the second set")
	}
	seen := map[string]string{}
	for _, s := range append(images.Components122.Sources(), images.Components136.Sources()[1:]...) {
		h := in(s)
		if other, ok := seen[h]; ok {
			t.Errorf("%s %s has the inputs of %s", s.Project, s.Tag, other)
		}
		seen[h] = s.Project + " " + s.Tag
	}
}

// The image layouts follow the upstream Dockerfiles.
func TestComponentLayout(t *testing.T) {
	paths := func(es []entry) string {
		var p []string
		for _, e := range es {
			p = append(p, e.Path)
		}
		return strings.Join(p, " ")
	}
	for _, c := range []struct {
		src    images.UpstreamSource
		want   string
		debian bool
	}{
		{images.Multus, "/entrypoint.sh /usr/src/multus-cni/bin/multus", true},
		{images.SRIOVCNI29, "/entrypoint.sh /usr/bin/sriov", true},
		{images.SRIOVDevicePlugin39, "/entrypoint.sh /usr/bin/sriovdp", true},
	} {
		es, cfg, debian := componentLayout(c.src, "/src", "/bin")
		if paths(es) != c.want || !debian || strings.Join(cfg.Entrypoint, " ") != "/entrypoint.sh" {
			t.Errorf("%s: files %s debian %v entrypoint %v", c.src.Project, paths(es), debian, cfg.Entrypoint)
		}
		if es[0].Src != "/src/images/entrypoint.sh" {
			t.Errorf("%s: entrypoint from %s", c.src.Project, es[0].Src)
		}
	}
	es, cfg, debian := componentLayout(images.NetworkResourcesInjector19, "/src", "/bin")
	if p := paths(es); debian || !strings.HasSuffix(p, "/usr/bin/webhook /usr/bin/installer") || !strings.Contains(p, "/tmp") {
		t.Errorf("injector: files %s debian %v", p, debian)
	}
	if strings.Join(cfg.Cmd, " ") != "webhook" || cfg.User != "1001" || len(cfg.Entrypoint) != 0 {
		t.Errorf("injector config %+v, want CMD webhook as user 1001 (its Dockerfile)", cfg)
	}
}
