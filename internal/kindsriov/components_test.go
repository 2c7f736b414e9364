package kindsriov

import (
	"context"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/cri"
	"github.com/kubevirt/kubevirtci-go/providers"
)

func testProvider(t *testing.T, f *cmdrun.Fake, env map[string]string) *Provider {
	t.Helper()
	c, err := config.Load(func(k string) string { return env[k] }, t.TempDir(), testDefaults)
	if err != nil {
		t.Fatal(err)
	}
	return &Provider{spec: testSpec(c.Provider), env: providers.Env{Config: c}, cli: cri.CLI{Bin: "docker", Run: saver{f}}}
}

// saver is the fake runner, plus an archive file for `docker save -o FILE`
// when the fake lets the save succeed.
type saver struct{ *cmdrun.Fake }

func (s saver) Run(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	out, err := s.Fake.Run(ctx, stdin, name, args...)
	if err == nil && len(args) > 2 && args[0] == "save" && args[1] == "-o" {
		err = os.WriteFile(args[2], []byte("images"), 0o644)
	}
	return out, err
}

// Component images the engine has are saved once and imported into every
// node; the others are left for the nodes to pull.
func TestLoadComponentImages(t *testing.T) {
	const local, pulled = "localhost/multus:src", "ghcr.io/k8snetworkplumbingwg/sriov-cni:v2.7.0"
	f := (&cmdrun.Fake{}).
		On("sha256:1\n", nil, "docker", "image", "inspect", "--format", "{{.Id}}", local).
		On("Error: No such image: "+pulled, errors.New("exit status 1"), "docker", "image", "inspect", "--format", "{{.Id}}", pulled).
		On("", nil, "docker", "save").
		On("", nil, "docker", "exec", "-i")
	p := testProvider(t, f, map[string]string{
		config.EnvMultusImage:            local,
		config.EnvSRIOVCNIImage:          pulled,
		config.EnvSRIOVDevicePluginImage: local, // the same image twice is loaded once
	})
	st := &upState{}
	ctx := context.Background()
	if err := p.startLoadingImages(ctx, st); err != nil {
		t.Fatal(err)
	}
	// The nodes appear once the cluster is created.
	st.nodes = []string{"sriov-control-plane", "sriov-worker"}
	close(st.imageLoad.created)
	if err := p.waitLoadingImages(ctx, st); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st.loadedImages, []string{local}) {
		t.Errorf("loaded %v, want [%s]", st.loadedImages, local)
	}
	var saves, imports []string
	for _, c := range f.Commands() {
		switch {
		case strings.HasPrefix(c, "docker save"):
			saves = append(saves, c)
		case strings.HasPrefix(c, "docker exec -i"):
			imports = append(imports, c)
		}
	}
	if len(saves) != 1 || !strings.HasSuffix(saves[0], " "+local) {
		t.Errorf("saves %v, want one of %s", saves, local)
	}
	if len(imports) != 2 {
		t.Fatalf("imports %v, want one per node", imports)
	}
	for _, n := range st.nodes {
		want := "docker exec -i " + n + " ctr --namespace=k8s.io images import --all-platforms --no-unpack -"
		found := false
		for _, c := range imports {
			found = found || c == want
		}
		if !found {
			t.Errorf("no %q among %v", want, imports)
		}
	}
}

// Nothing local: nothing is saved or imported.
func TestLoadComponentImagesNoneLocal(t *testing.T) {
	f := (&cmdrun.Fake{}).On("Error: No such image", errors.New("exit status 1"), "docker", "image", "inspect")
	p := testProvider(t, f, nil)
	created := make(chan struct{})
	close(created)
	local, err := p.loadComponentImages(context.Background(), created, func() []string { return []string{"sriov-control-plane"} })
	if err != nil || len(local) != 0 {
		t.Fatalf("loaded %v, %v; want nothing", local, err)
	}
	for _, c := range f.Commands() {
		if !strings.HasPrefix(c, "docker image inspect") {
			t.Errorf("unexpected command %s", c)
		}
	}
}

// A failed import names the node and the images.
func TestLoadComponentImagesImportFails(t *testing.T) {
	f := (&cmdrun.Fake{}).
		On("sha256:1\n", nil, "docker", "image", "inspect").
		On("", nil, "docker", "save").
		On("", errors.New("exit status 1: ctr: failed"), "docker", "exec", "-i", "sriov-worker")
	p := testProvider(t, f, nil)
	created := make(chan struct{})
	close(created)
	_, err := p.loadComponentImages(context.Background(), created, func() []string { return []string{"sriov-worker"} })
	if err == nil || !strings.Contains(err.Error(), "node sriov-worker") || !strings.Contains(err.Error(), images.Multus.UpstreamImage()) {
		t.Fatalf("want an error naming the node and the images, got %v", err)
	}
}

// A cluster-up that fails before the nodes exist ends the background load:
// nothing is imported and the load returns.
func TestLoadingImagesStoppedBeforeNodes(t *testing.T) {
	f := (&cmdrun.Fake{}).
		On("sha256:1\n", nil, "docker", "image", "inspect").
		On("", nil, "docker", "save")
	p := testProvider(t, f, nil)
	st := &upState{}
	if err := p.startLoadingImages(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	st.stopLoadingImages() // returns only once the goroutine ended
	if !errors.Is(st.imageLoad.err, context.Canceled) {
		t.Errorf("load ended with %v, want context.Canceled", st.imageLoad.err)
	}
	for _, c := range f.Commands() {
		if strings.HasPrefix(c, "docker exec") {
			t.Errorf("imported although no node exists: %s", c)
		}
	}
}

// The summary never calls a cluster ready whose components were not waited for.
func TestWaitedFor(t *testing.T) {
	for _, c := range []struct {
		env        map[string]string
		ready      bool
		has, lacks string
	}{
		{nil, true, "allocatable kubevirt.io/sriov_net on every SR-IOV node", "not waited"},
		{map[string]string{config.EnvSkipAllocatableWait: "true"}, true, "allocatable kubevirt.io/sriov_net not waited for (SRIOV_SKIP_ALLOCATABLE_WAIT=true)", "deployed but"},
		{map[string]string{config.EnvSkipComponentWaits: "true"}, false, "not waited for (SRIOV_SKIP_COMPONENT_WAITS=true)", "Ready"},
	} {
		p := testProvider(t, &cmdrun.Fake{}, c.env)
		ready, what := p.waitedFor()
		if ready != c.ready || !strings.Contains(what, c.has) || strings.Contains(what, c.lacks) {
			t.Errorf("env %v: ready=%v %q; want ready=%v, with %q, without %q", c.env, ready, what, c.ready, c.has, c.lacks)
		}
	}
}
