package preload

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/cri"
)

// Engine is what making a preload needs of the container engine (cri.CLI).
type Engine interface {
	Execer
	ExecInput(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error)
	ImageCommand(ctx context.Context, ref string) (entrypoint, cmd []string, err error)
	SaveImages(ctx context.Context, file string, refs ...string) error
	Remove(ctx context.Context, name string) error
	RunDetached(ctx context.Context, s cri.RunSpec) (string, error)
	StopContainer(ctx context.Context, name string) error
	CommitContainer(ctx context.Context, name, ref string, changes ...string) error
}

var _ Engine = cri.CLI{}

// Spec is a node image to make with images preloaded.
type Spec struct {
	NodeImage string            // the node image it is made from
	Ref       string            // the image to make
	Images    []string          // images of the engine to import
	Builder   string            // the throwaway container's name
	Labels    map[string]string // labels of the made image
	// BuilderLabels mark the throwaway container: something that cleans
	// up after an interrupted run finds it by them.
	BuilderLabels map[string]string
}

// Make makes s.Ref: a container of the node image runs only its
// containerd (no systemd, no kubelet), the images are imported into it
// packed, the images of its store are unpacked (Unpack) and their layers
// moved out of /var (Relocate), containerd stops, and the container is
// committed with the node image's own entrypoint and command. The
// container is removed in any case.
func Make(ctx context.Context, cli Engine, s Spec) (res Result, err error) {
	entrypoint, cmd, err := cli.ImageCommand(ctx, s.NodeImage)
	if err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp("", "kubevirtci-images-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	archive := filepath.Join(dir, "images.tar")
	if err := cli.SaveImages(ctx, archive, s.Images...); err != nil {
		return res, err
	}
	if err := cli.Remove(ctx, s.Builder); err != nil {
		return res, err
	}
	defer func() {
		// A fresh context: an interrupted preload still removes it, also
		// when the run's client was ended while the engine created it.
		rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if rerr := cli.Remove(rctx, s.Builder); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if _, err := cli.RunDetached(ctx, cri.RunSpec{
		Name: s.Builder, Image: s.NodeImage, Entrypoint: "containerd", Privileged: true,
		Tmpfs: []string{"/run", "/tmp"}, Labels: s.BuilderLabels,
	}); err != nil {
		return res, err
	}
	if err := waitContainerd(ctx, cli, s.Builder); err != nil {
		return res, err
	}
	f, err := os.Open(archive)
	if err != nil {
		return res, err
	}
	defer f.Close()
	if _, err := cli.ExecInput(ctx, f, s.Builder, "ctr", ns, "images", "import", "--all-platforms", "--no-unpack", "-"); err != nil {
		return res, err
	}
	if res, err = Unpack(ctx, cli, s.Builder); err != nil {
		return res, err
	}
	if len(res.Unpacked) > 0 {
		if res.Layers, err = Relocate(ctx, cli, s.Builder, res.Unpacked); err != nil {
			return res, err
		}
	}
	if err := cli.StopContainer(ctx, s.Builder); err != nil {
		return res, err
	}
	changes := []string{"ENTRYPOINT " + jsonList(entrypoint), "CMD " + jsonList(cmd)}
	for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
		changes = append(changes, "LABEL "+k+"="+strconv.Quote(s.Labels[k]))
	}
	return res, cli.CommitContainer(ctx, s.Builder, s.Ref, changes...)
}

// waitContainerd waits until containerd answers in container name.
func waitContainerd(ctx context.Context, cli Execer, name string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		_, err := cli.Exec(ctx, name, "ctr", "version")
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("containerd in %s did not answer: %w", name, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// jsonList is a Dockerfile instruction's JSON form of args.
func jsonList(args []string) string {
	if args == nil {
		args = []string{}
	}
	b, _ := json.Marshal(args)
	return string(b)
}
