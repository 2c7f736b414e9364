package kindsriov

import (
	"context"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

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

const (
	testNode   = "quay.io/kubevirtci/kindest_node:v1.22.2"
	localImage = "localhost/multus:src"
	pulled     = "ghcr.io/k8snetworkplumbingwg/sriov-cni:v2.7.0"
)

// preloadFake is an engine with the node image and localImage, not pulled,
// and no preload.
func preloadFake() *cmdrun.Fake {
	return (&cmdrun.Fake{}).
		On("sha256:n\n", nil, "docker", "image", "inspect", "--format", "{{.Id}}", testNode).
		On("sha256:1\n", nil, "docker", "image", "inspect", "--format", "{{.Id}}", localImage).
		On("Error: No such image: "+pulled, errors.New("exit status 1"), "docker", "image", "inspect", "--format", "{{.Id}}", pulled).
		On("Error: No such image", errors.New("exit status 1"), "docker", "image", "inspect", "--format", "{{.Id}}").
		On(`["/usr/local/bin/entrypoint","/sbin/init"] null`+"\n", nil, "docker", "image", "inspect", "--format", "{{json .Config.Entrypoint}} {{json .Config.Cmd}}", testNode).
		On("", nil, "docker", "save").
		On("", nil, "docker", "rm").
		On("cid\n", nil, "docker", "run").
		On("", nil, "docker", "exec").
		On("", nil, "docker", "stop").
		On("", nil, "docker", "commit").
		On("", nil, "docker", "images")
}

func preloadEnv() map[string]string {
	return map[string]string{
		config.EnvNumNodes:               "3",
		config.EnvMultusImage:            localImage,
		config.EnvSRIOVCNIImage:          pulled,
		config.EnvSRIOVDevicePluginImage: localImage, // the same image twice is loaded once
	}
}

// commandsWith returns f's command lines that start with prefix.
func commandsWith(f *cmdrun.Fake, prefix string) []string {
	var out []string
	for _, c := range f.Commands() {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// The component images the engine has are preloaded into a node image made
// from the settings' one: its containerd alone runs in a throwaway
// container, imports them, lists its store for the unpack (package preload
// tests what follows), stops, and the container is committed with the node image's entrypoint and command.
// Every node is created from it.
func TestPreloadImages(t *testing.T) {
	f := preloadFake()
	p := testProvider(t, f, preloadEnv())
	st := &upState{}
	if err := p.preloadImages(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st.loadedImages, []string{localImage}) {
		t.Errorf("loaded %v, want [%s]", st.loadedImages, localImage)
	}
	if !strings.HasPrefix(st.nodeImage, preloadRepo+":") {
		t.Fatalf("node image %q, want one of %s", st.nodeImage, preloadRepo)
	}
	name := "kubevirtci-preload-" + strings.TrimPrefix(st.nodeImage, preloadRepo+":")
	for _, want := range []string{
		"docker save -o ",
		"docker run --detach --name " + name + " --label io.kubevirtci.preload=builder --privileged --entrypoint containerd --tmpfs /run --tmpfs /tmp " + testNode,
		"docker exec " + name + " ctr version",
		"docker exec -i " + name + " ctr --namespace=k8s.io images import --all-platforms --no-unpack -",
		"docker exec " + name + " ctr --namespace=k8s.io images ls",
		"docker exec " + name + " ctr --namespace=k8s.io content ls",
		"docker stop --time 30 " + name,
		`docker commit --change ENTRYPOINT ["/usr/local/bin/entrypoint","/sbin/init"] --change CMD [] --change LABEL io.kubevirtci.preload="` + localImage + `" --change LABEL io.kubevirtci.preload.node="` + testNode + `" ` + name + " " + st.nodeImage,
		"docker rm --force --volumes " + name,
		"docker images --filter label=io.kubevirtci.preload.node=" + testNode,
	} {
		if len(commandsWith(f, want)) == 0 {
			t.Errorf("no command %q among:\n%s", want, strings.Join(f.Commands(), "\n"))
		}
	}
	if saves := commandsWith(f, "docker save"); len(saves) != 1 || !strings.HasSuffix(saves[0], " "+localImage) {
		t.Errorf("saves %v, want one of %s", saves, localImage)
	}
	// The throwaway container is removed after the commit.
	cmds := f.Commands()
	if last := commandsWith(f, "docker rm"); cmds[len(cmds)-1] != last[len(last)-1] && !strings.HasPrefix(cmds[len(cmds)-1], "docker images") {
		t.Errorf("the container is not removed at the end:\n%s", strings.Join(cmds, "\n"))
	}
	if n := strings.Count(string(st.kindConfig), "image: "+st.nodeImage); n != 3 {
		t.Errorf("%d nodes of the kind config use %s, want 3:\n%s", n, st.nodeImage, st.kindConfig)
	}
}

// A preload made by an earlier cluster-up is used as it is.
func TestPreloadImagesReused(t *testing.T) {
	f := preloadFake()
	p := testProvider(t, f, preloadEnv())
	ref := preloadRef(testNode, "sha256:n", []string{localImage}, map[string]string{localImage: "sha256:1"})
	f.Responses = append([]cmdrun.Response{{Prefix: []string{"docker", "image", "inspect", "--format", "{{.Id}}", ref}, Stdout: "sha256:p\n"}}, f.Responses...)
	st := &upState{}
	if err := p.preloadImages(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	if st.nodeImage != ref || !strings.Contains(string(st.kindConfig), "image: "+ref) {
		t.Fatalf("node image %q, want %s; kind config:\n%s", st.nodeImage, ref, st.kindConfig)
	}
	for _, c := range f.Commands() {
		if !strings.HasPrefix(c, "docker image inspect") {
			t.Errorf("unexpected command %s", c)
		}
	}
}

// The preload's name changes with the ID of any image in it.
func TestPreloadRefFollowsTheImageIDs(t *testing.T) {
	refs := map[string]bool{}
	for _, id := range []string{"sha256:1", "sha256:2"} {
		refs[preloadRef(testNode, "sha256:n", []string{localImage}, map[string]string{localImage: id})] = true
	}
	if len(refs) != 2 {
		t.Errorf("the same preload for two IDs of %s: %v", localImage, refs)
	}
}

// Nothing local: the nodes' image is the settings' one, nothing is made.
func TestPreloadImagesNoneLocal(t *testing.T) {
	f := (&cmdrun.Fake{}).On("Error: No such image", errors.New("exit status 1"), "docker", "image", "inspect")
	p := testProvider(t, f, nil)
	st := &upState{kindConfig: []byte("as rendered")}
	if err := p.preloadImages(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	if st.nodeImage != "" || string(st.kindConfig) != "as rendered" || len(st.loadedImages) != 0 {
		t.Errorf("node image %q, loaded %v, kind config %q; want them untouched", st.nodeImage, st.loadedImages, st.kindConfig)
	}
	for _, c := range f.Commands() {
		if !strings.HasPrefix(c, "docker image inspect") {
			t.Errorf("unexpected command %s", c)
		}
	}
}

// A failed import names the images and the node image, and the throwaway
// container is removed.
func TestPreloadImagesImportFails(t *testing.T) {
	f := (&cmdrun.Fake{}).On("", errors.New("exit status 1: ctr: failed"), "docker", "exec", "-i")
	f.Responses = append(f.Responses, preloadFake().Responses...)
	p := testProvider(t, f, preloadEnv())
	err := p.preloadImages(context.Background(), &upState{})
	if err == nil || !strings.Contains(err.Error(), localImage) || !strings.Contains(err.Error(), testNode) || !strings.Contains(err.Error(), "ctr: failed") {
		t.Fatalf("want an error naming the images, the node image and the cause, got %v", err)
	}
	if len(commandsWith(f, "docker rm --force --volumes kubevirtci-preload-")) != 2 {
		t.Errorf("the container is not removed after the failure:\n%s", strings.Join(f.Commands(), "\n"))
	}
	if len(commandsWith(f, "docker commit")) != 0 {
		t.Errorf("committed after a failed import")
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
