package imagesync

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func fakeDigest(c byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(string(c), 64)}
}

// goldenPushed are the images the golden files are rewritten for.
func goldenPushed() []Pushed {
	var out []Pushed
	for _, p := range []struct {
		name, tag string
		d         byte
	}{{"virt-api", "devel", 'a'}, {"virt-handler", "devel", 'b'}, {"virt-launcher", "devel", 'c'}, {"virt-operator", "devel", 'd'}, {"virt-operator", "latest", 'e'}} {
		d := fakeDigest(p.d)
		out = append(out, Pushed{Name: p.name, Tag: p.tag, Digest: d, ClusterRef: "registry:5000/kubevirt/" + p.name + "@" + d.String()})
	}
	return out
}

// Each testdata/*.yaml is read, rewritten for goldenPushed with the registry
// on localhost:5000, and compared with testdata/*.golden: the objects as
// YAML, then the references seen, as comments. Run with -update to write
// the golden files.
func TestRewriteGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	must(t, err)
	if len(files) == 0 {
		t.Fatal("no testdata/*.yaml")
	}
	p, _ := ParsePrefix("kubevirt")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			ms, err := ReadManifests([]string{f}, "")
			must(t, err)
			rw := NewRewriter(p, "localhost:5000", "registry:5000", goldenPushed())
			var out bytes.Buffer
			var report []string
			for i, m := range ms {
				ch, err := rw.Rewrite(m.Object, filepath.Base(m.Source))
				must(t, err)
				for _, c := range ch {
					report = append(report, "# "+c.String())
				}
				b, err := yaml.Marshal(m.Object.Object)
				must(t, err)
				if i > 0 {
					out.WriteString("---\n")
				}
				out.Write(b)
			}
			out.WriteString("# references:\n" + strings.Join(report, "\n") + "\n")
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				must(t, os.WriteFile(golden, out.Bytes(), 0o644))
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestRewriteGolden -update to create it)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("%s differs from %s (run with -update to accept):\n%s", f, golden, diffLines(string(want), out.String()))
			}
		})
	}
}

func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, a, c)
		}
	}
	return b.String()
}

func TestSplitRef(t *testing.T) {
	for in, want := range map[string][3]string{
		"kubevirt/virt-api":                   {"kubevirt/virt-api", "", ""},
		"kubevirt/virt-api:devel":             {"kubevirt/virt-api", "devel", ""},
		"localhost:5000/kubevirt/virt-api":    {"localhost:5000/kubevirt/virt-api", "", ""},
		"localhost:5000/kubevirt/virt-api:v1": {"localhost:5000/kubevirt/virt-api", "v1", ""},
		"registry:5000/k/x@sha256:abc":        {"registry:5000/k/x", "", "sha256:abc"},
		"registry:5000/k/x:devel@sha256:abc":  {"registry:5000/k/x", "devel", "sha256:abc"},
	} {
		r, tg, d := splitRef(in)
		if [3]string{r, tg, d} != want {
			t.Errorf("%s: got %q %q %q, want %q", in, r, tg, d, want)
		}
	}
}

func TestPrefix(t *testing.T) {
	for _, c := range []struct {
		prefix, repo string
		want         string // "" = no match
	}{
		{"kubevirt", "kubevirt/virt-api", "virt-api"},
		{"kubevirt", "docker.io/kubevirt/virt-api", "virt-api"},
		{"kubevirt", "localhost/kubevirt/virt-api", "virt-api"},
		{"kubevirt", "kubevirt/sub/virt-api", "sub/virt-api"},
		{"kubevirt", "quay.io/kubevirt/virt-api", ""},
		{"kubevirt", "localhost:5000/kubevirt/virt-api", ""},
		{"kubevirt", "kubevirtx/virt-api", ""},
		{"kubevirt", "kubevirt", ""},
		{"quay.io/kubevirt", "quay.io/kubevirt/virt-api", "virt-api"},
		{"quay.io/kubevirt", "kubevirt/virt-api", ""},
		{"localhost:5000/kubevirt", "localhost:5000/kubevirt/virt-api", "virt-api"},
		{"my/org", "my/org/virt-api", "virt-api"},
	} {
		p, err := ParsePrefix(c.prefix)
		must(t, err)
		got, ok := p.match(c.repo)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("prefix %s, repo %s: got %q %v, want %q", c.prefix, c.repo, got, ok, c.want)
		}
	}
	for _, bad := range []string{"", "quay.io", "Kubevirt", "kubevirt:devel", "kube virt"} {
		if _, err := ParsePrefix(bad); err == nil || !strings.Contains(err.Error(), "DOCKER_PREFIX") {
			t.Errorf("%q: got %v", bad, err)
		}
	}
}

func TestListEngine(t *testing.T) {
	eng := newFakeEngine(t)
	eng.add("kubevirt/virt-api:devel", "sha256:"+strings.Repeat("1", 64), nil)
	// podman prints IDs without the algorithm
	eng.add("localhost/kubevirt/virt-handler:devel", strings.Repeat("2", 64), nil)
	eng.add("<none>:<none>", "sha256:"+strings.Repeat("3", 64), nil)
	imgs, err := ListEngine(t.Context(), eng, "docker")
	must(t, err)
	if len(imgs) != 2 || imgs[1].ID != "sha256:"+strings.Repeat("2", 64) || imgs[1].Repository != "localhost/kubevirt/virt-handler" {
		t.Fatalf("got %+v", imgs)
	}
	if c := eng.Commands(); len(c) != 1 || c[0] != "docker images --no-trunc --format "+listFormat {
		t.Errorf("commands %v", c)
	}
}
