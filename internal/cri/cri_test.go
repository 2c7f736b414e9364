package cri

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
)

const inspectOut = `[{"Id":"abc","Name":"/sriov-registry","Image":"sha256:img",
 "Config":{"Image":"quay.io/kubevirtci/library-registry:2.7.1","Labels":{"a":"b"}},
 "State":{"Running":true,"Pid":4242},
 "HostConfig":{"RestartPolicy":{"Name":"always"},"PortBindings":{"5000/tcp":[{"HostIp":"127.0.0.1","HostPort":"5000"}]}},
 "NetworkSettings":{"Networks":{"kind":{"IPAddress":"172.18.0.5"}}}}]`

func TestInspect(t *testing.T) {
	f := (&cmdrun.Fake{}).On(inspectOut, nil, "docker", "container", "inspect", "sriov-registry")
	c := CLI{Bin: "docker", Run: f}
	ct, err := c.Inspect(context.Background(), "sriov-registry")
	if err != nil {
		t.Fatal(err)
	}
	if ct.Name != "sriov-registry" || !ct.Running || ct.PID != 4242 || ct.Networks["kind"] != "172.18.0.5" ||
		ct.Ports["5000/tcp"][0] != "127.0.0.1:5000" || ct.RestartPolicy != "always" || ct.ImageID != "sha256:img" {
		t.Fatalf("unexpected container: %+v", ct)
	}
}

func TestInspectNotFound(t *testing.T) {
	f := (&cmdrun.Fake{}).On("Error: No such container: sriov2-registry", errors.New("exit status 1"), "docker", "container", "inspect").
		On("Error: No such container: x", errors.New("exit status 1"), "docker", "rm")
	c := CLI{Bin: "docker", Run: f}
	_, err := c.Inspect(context.Background(), "sriov2-registry")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
	if err := c.Remove(context.Background(), "x"); err != nil {
		t.Fatalf("remove of a missing container must succeed, got %v", err)
	}
}

func TestPID(t *testing.T) {
	f := (&cmdrun.Fake{}).On("1234\n", nil, "podman", "container", "inspect", "--format")
	c := CLI{Bin: "podman", Run: f}
	pid, err := c.PID(context.Background(), "sriov-worker")
	if err != nil || pid != 1234 {
		t.Fatalf("pid %d err %v", pid, err)
	}
	f2 := (&cmdrun.Fake{}).On("0\n", nil, "docker")
	if _, err := (CLI{Bin: "docker", Run: f2}).PID(context.Background(), "n"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("want not running, got %v", err)
	}
}

func TestRunDetachedArgv(t *testing.T) {
	f := (&cmdrun.Fake{}).On("id\n", nil, "docker", "run")
	c := CLI{Bin: "docker", Run: f}
	_, err := c.RunDetached(context.Background(), RunSpec{Name: "sriov-registry", Image: "reg:1", Network: "kind",
		Publish: []string{"127.0.0.1:5000:5000"}, RestartPolicy: "always", Labels: map[string]string{"b": "2", "a": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "docker run --detach --name sriov-registry --network kind --publish 127.0.0.1:5000:5000 --restart always --label a=1 --label b=2 reg:1"
	if got := f.Commands()[0]; got != want {
		t.Fatalf("argv\n got %s\nwant %s", got, want)
	}
}

func TestDetect(t *testing.T) {
	look := func(have ...string) func(string) (string, error) {
		return func(b string) (string, error) {
			for _, h := range have {
				if h == b {
					return "/usr/bin/" + b, nil
				}
			}
			return "", errors.New("not found")
		}
	}
	ctx := context.Background()
	// podman installed but its engine fails: docker is chosen.
	f := (&cmdrun.Fake{}).On("", errors.New("exit 125"), "podman", "version").On("20.10.24", nil, "docker", "version")
	c, err := Detect(ctx, "", f, look("podman", "docker"))
	if err != nil || c.Name() != "docker" {
		t.Fatalf("got %v %v", c.Name(), err)
	}
	// both work: podman first, as the old provider did.
	f = (&cmdrun.Fake{}).On("4.3", nil, "podman", "version").On("20.10", nil, "docker", "version")
	if c, _ := Detect(ctx, "", f, look("podman", "docker")); c.Name() != "podman" {
		t.Fatalf("want podman, got %s", c.Name())
	}
	// nothing: a message that says what to do.
	_, err = Detect(ctx, "", &cmdrun.Fake{}, look())
	if err == nil || !strings.Contains(err.Error(), "CRI_BIN") {
		t.Fatalf("want a hint at CRI_BIN, got %v", err)
	}
	// explicit but not answering.
	f = (&cmdrun.Fake{}).On("", errors.New("exit 1"), "docker")
	if _, err := Detect(ctx, "docker", f, look("docker")); err == nil || !strings.Contains(err.Error(), `CRI_BIN="docker"`) {
		t.Fatalf("got %v", err)
	}
}
