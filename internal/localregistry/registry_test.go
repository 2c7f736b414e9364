package localregistry

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/cri"

	"github.com/BurntSushi/toml"
)

type fakeEngine struct {
	ct      *cri.Container
	imageID string
	calls   []string
}

func (f *fakeEngine) Inspect(_ context.Context, name string) (*cri.Container, error) {
	f.calls = append(f.calls, "inspect "+name)
	if f.ct == nil || f.ct.Name != name {
		return nil, fmt.Errorf("container %q: %w", name, cri.ErrNotFound)
	}
	return f.ct, nil
}
func (f *fakeEngine) RunDetached(_ context.Context, s cri.RunSpec) (string, error) {
	f.calls = append(f.calls, fmt.Sprintf("run %s %s %v %s %s", s.Name, s.Network, s.Publish, s.RestartPolicy, s.Image))
	return "id", nil
}
func (f *fakeEngine) Remove(_ context.Context, name string) error {
	f.calls = append(f.calls, "rm "+name)
	return nil
}
func (f *fakeEngine) ImageID(_ context.Context, ref string) (string, error) {
	if f.imageID == "" {
		return "", fmt.Errorf("no such image %s", ref)
	}
	return f.imageID, nil
}

func good() *cri.Container {
	return &cri.Container{Name: "sriov-registry", Running: true, ImageID: "sha256:1", Image: "reg:1",
		Networks: map[string]string{"kind": "172.18.0.9"}, Ports: map[string][]string{"5000/tcp": {"127.0.0.1:5000"}},
		RestartPolicy: "always"}
}

var spec = Spec{Container: "sriov-registry", Image: "reg:1", HostPort: 5000, Cluster: "sriov"}

func TestEnsureReusesCorrect(t *testing.T) {
	e := &fakeEngine{ct: good(), imageID: "sha256:1"}
	out, err := Ensure(context.Background(), e, spec, nil)
	if err != nil || out != Reused {
		t.Fatalf("%v %v", out, err)
	}
	if strings.Contains(strings.Join(e.calls, ";"), "run ") {
		t.Fatalf("a correct registry must not be recreated: %v", e.calls)
	}
}

func TestEnsureReplacesDrifted(t *testing.T) {
	for name, mutate := range map[string]func(*cri.Container){
		"published on all addresses": func(c *cri.Container) { c.Ports["5000/tcp"] = []string{"0.0.0.0:5000"} },
		"stopped":                    func(c *cri.Container) { c.Running = false },
		"other image":                func(c *cri.Container) { c.ImageID = "sha256:old" },
		"off the kind network":       func(c *cri.Container) { delete(c.Networks, "kind") },
		"no restart policy":          func(c *cri.Container) { c.RestartPolicy = "no" },
	} {
		t.Run(name, func(t *testing.T) {
			ct := good()
			mutate(ct)
			e := &fakeEngine{ct: ct, imageID: "sha256:1"}
			out, err := Ensure(context.Background(), e, spec, func(int) error { return nil })
			if err != nil || out != Replaced {
				t.Fatalf("%v %v", out, err)
			}
			got := strings.Join(e.calls, ";")
			want := "inspect sriov-registry;rm sriov-registry;run sriov-registry kind [127.0.0.1:5000:5000] always reg:1"
			if got != want {
				t.Fatalf("calls\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestEnsureCreatesAndChecksPort(t *testing.T) {
	e := &fakeEngine{imageID: "sha256:1"}
	_, err := Ensure(context.Background(), e, spec, func(p int) error { return fmt.Errorf("port %d in use", p) })
	if err == nil || !strings.Contains(err.Error(), "port 5000 in use") {
		t.Fatalf("want the port error, got %v", err)
	}
	if strings.Contains(strings.Join(e.calls, ";"), "run ") {
		t.Fatal("nothing may start when the port is taken")
	}
	_, err = Ensure(context.Background(), &fakeEngine{}, spec, nil)
	if err == nil || !strings.Contains(err.Error(), "REGISTRY_IMAGE") {
		t.Fatalf("a missing image must name REGISTRY_IMAGE, got %v", err)
	}
}

func TestEnsureOtherClusterUntouched(t *testing.T) {
	// sriov2's registry exists; sriov's does not: sriov2-registry is never removed.
	ct := good()
	ct.Name = "sriov2-registry"
	e := &fakeEngine{ct: ct, imageID: "sha256:1"}
	if _, err := Ensure(context.Background(), e, spec, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(e.calls, ";"), "rm sriov2-registry") {
		t.Fatalf("removed another cluster's registry: %v", e.calls)
	}
}

func TestWaitServing(t *testing.T) {
	ready := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-ready:
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	_, portS, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	port, _ := strconv.Atoi(portS)
	time.AfterFunc(150*time.Millisecond, func() { close(ready) })
	if err := WaitServing(context.Background(), port, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	err := WaitServing(context.Background(), port, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("want a timeout, got %v", err)
	}
}

func TestHostsToml(t *testing.T) {
	got := HostsToml("sriov2-registry")
	var f hostsFile
	if _, err := toml.Decode(got, &f); err != nil {
		t.Fatalf("%v:\n%s", err, got)
	}
	const up = "http://sriov2-registry:5000"
	if h, ok := f.Host[up]; f.Server != up || !ok || fmt.Sprint(h.Capabilities) != "[pull resolve]" || !h.SkipVerify {
		t.Errorf("hosts.toml is %+v:\n%s", f, got)
	}
	if HostsTomlPath != "/etc/containerd/certs.d/registry:5000/hosts.toml" {
		t.Fatal(HostsTomlPath)
	}
	if !strings.Contains(HostingConfigMap(5001)["localRegistryHosting.v1"], `host: "localhost:5001"`) {
		t.Fatal(HostingConfigMap(5001))
	}
}

// A mirrored host's hosts.toml: the mirrors in the order given, then the
// upstream server (registry-1.docker.io for docker.io).
func TestMirrorHostsToml(t *testing.T) {
	got := MirrorHostsToml("docker.io", []string{"http://zz-cache:5000", "https://a-mirror.example.com"})
	md, err := toml.Decode(got, &hostsFile{})
	if err != nil {
		t.Fatalf("%v:\n%s", err, got)
	}
	var f hostsFile
	toml.Decode(got, &f)
	if f.Server != "https://registry-1.docker.io" || len(f.Host) != 2 {
		t.Errorf("hosts.toml is %+v:\n%s", f, got)
	}
	for u, h := range f.Host {
		if fmt.Sprint(h.Capabilities) != "[pull resolve]" || h.SkipVerify {
			t.Errorf("host %s: %+v", u, h)
		}
	}
	// containerd tries the [host] tables in the file's order.
	var order []string
	for _, k := range md.Keys() {
		if len(k) == 2 && k[0] == "host" {
			order = append(order, k[1])
		}
	}
	if fmt.Sprint(order) != "[http://zz-cache:5000 https://a-mirror.example.com]" {
		t.Errorf("mirror order %v:\n%s", order, got)
	}
	if s := MirrorHostsToml("quay.io", []string{"http://m:5000"}); !strings.HasPrefix(s, `server = "https://quay.io"`) {
		t.Errorf("quay.io:\n%s", s)
	}
	if HostsTomlPathOf("ghcr.io") != "/etc/containerd/certs.d/ghcr.io/hosts.toml" {
		t.Error(HostsTomlPathOf("ghcr.io"))
	}
}
