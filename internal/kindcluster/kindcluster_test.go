package kindcluster

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
)

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]string{
		"kind v0.11.1 go1.16.4 linux/amd64":    "0.11.1",
		"kind v0.33.0 go1.26.8 linux/amd64\n":  "0.33.0",
		"kind v0.9.0-alpha+abc go1.15 linux/x": "0.9.0-alpha+abc",
	} {
		if got, ok := ParseVersion(in); !ok || got != want {
			t.Errorf("%q: got %q", in, got)
		}
	}
	if _, ok := ParseVersion("something else"); ok {
		t.Error("parsed garbage")
	}
}

func TestLibraryVersionMatchesModule(t *testing.T) {
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "sigs.k8s.io/kind v"+LibraryVersion()) {
		t.Fatalf("compiled-in kind %s is not the one in go.mod", LibraryVersion())
	}
}

func noKind(string) (string, error) { return "", errors.New("not found") }

func TestFindBinaryOnPath(t *testing.T) {
	f := (&cmdrun.Fake{}).On("kind v0.11.1 go1.16.4 linux/amd64", nil, "/usr/local/bin/kind", "version")
	look := func(b string) (string, error) {
		if b == "kind" {
			return "/usr/local/bin/kind", nil
		}
		return "", errors.New("nope")
	}
	b, err := FindBinary(context.Background(), "0.11.1", "podman", t.TempDir(), f, look)
	if err != nil || b.Path != "/usr/local/bin/kind" || b.Version() != "0.11.1" {
		t.Fatalf("%+v %v", b, err)
	}
	// The binary is told which engine to use: the same one as the rest of the tool.
	f.On("", nil, "env")
	_ = b.Delete(context.Background(), "sriov", "/k")
	last := f.Commands()[len(f.Commands())-1]
	if last != "env KIND_EXPERIMENTAL_PROVIDER=podman /usr/local/bin/kind delete cluster --name sriov --kubeconfig /k" {
		t.Fatal(last)
	}
}

func TestFindBinaryWrongVersionNoGo(t *testing.T) {
	f := (&cmdrun.Fake{}).On("kind v0.20.0 go1.20 linux/amd64", nil, "/usr/bin/kind", "version")
	look := func(b string) (string, error) {
		if b == "kind" {
			return "/usr/bin/kind", nil
		}
		return "", errors.New("nope")
	}
	statFile = func(string) (os.FileInfo, error) { return nil, fs.ErrNotExist }
	defer func() { statFile = os.Stat }()
	_, err := FindBinary(context.Background(), "0.11.1", "docker", t.TempDir(), f, look)
	if err == nil {
		t.Fatal("a kind of another version must never be used")
	}
	for _, want := range []string{"KIND_VERSION=0.11.1", "v0.20.0", "unset KIND_VERSION"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
}

func TestFindBinaryBuildsWithGo(t *testing.T) {
	dir := t.TempDir()
	f := (&cmdrun.Fake{}).
		On("", nil, "env", "GOBIN="+dir+"/kind-v0.11.1", "CGO_ENABLED=0", "/usr/bin/go", "install", "sigs.k8s.io/kind@v0.11.1").
		On("kind v0.11.1 go1.26 linux/amd64", nil, dir+"/kind-v0.11.1/kind", "version")
	look := func(b string) (string, error) {
		if b == "go" {
			return "/usr/bin/go", nil
		}
		return "", errors.New("nope")
	}
	b, err := FindBinary(context.Background(), "0.11.1", "docker", dir, f, look)
	if err != nil || b.Path != dir+"/kind-v0.11.1/kind" {
		t.Fatalf("%+v %v (calls %v)", b, err, f.Commands())
	}
}

func TestNewLibraryRejectsUnknownEngine(t *testing.T) {
	if _, err := NewLibrary("nerdctl", nil); err == nil {
		t.Fatal("want an error")
	}
}
