// Package cri drives the container CLI (docker or podman) that runs the kind
// nodes and the local registry. Every call goes through a cmdrun.Runner, so
// the exact argv is visible in errors and scriptable in tests.
package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
)

// CLI is a container command-line tool: docker or podman.
type CLI struct {
	// Bin is the binary to run ("docker", "podman" or a path to one of them).
	Bin string
	Run cmdrun.Runner
}

// Name is "docker" or "podman": the engine kind must be told to use.
func (c CLI) Name() string { return filepath.Base(c.Bin) }

func (c CLI) run(ctx context.Context, args ...string) ([]byte, error) {
	return c.Run.Run(ctx, nil, c.Bin, args...)
}

// ErrNotFound is returned (wrapped) when a container does not exist.
var ErrNotFound = errors.New("no such container")

// Container is what the provider needs to know about a container.
type Container struct {
	Name    string
	ID      string
	Image   string // the reference it was created from
	ImageID string
	Running bool
	PID     int
	// Networks maps network name to the container's IPv4 address on it.
	Networks map[string]string
	// Ports maps "5000/tcp" to host bindings such as "127.0.0.1:5000".
	Ports map[string][]string
	// RestartPolicy is e.g. "always".
	RestartPolicy string
	Labels        map[string]string
}

// inspectJSON is the subset of `docker inspect` (and podman's compatible
// output) that we read.
type inspectJSON struct {
	ID     string `json:"Id"`
	Name   string `json:"Name"`
	Image  string `json:"Image"`
	Config struct {
		Image  string            `json:"Image"`
		Labels map[string]string `json:"Labels"`
	} `json:"Config"`
	State struct {
		Running bool `json:"Running"`
		Pid     int  `json:"Pid"`
	} `json:"State"`
	HostConfig struct {
		RestartPolicy struct {
			Name string `json:"Name"`
		} `json:"RestartPolicy"`
		PortBindings map[string][]struct {
			HostIP   string `json:"HostIp"`
			HostPort string `json:"HostPort"`
		} `json:"PortBindings"`
	} `json:"HostConfig"`
	NetworkSettings struct {
		Networks map[string]struct {
			IPAddress string `json:"IPAddress"`
		} `json:"Networks"`
	} `json:"NetworkSettings"`
}

// Inspect returns the container called name. When it does not exist the
// error wraps ErrNotFound. Names are matched exactly (docker inspect takes a
// name or an ID; a name never matches another container by substring).
func (c CLI) Inspect(ctx context.Context, name string) (*Container, error) {
	out, err := c.run(ctx, "container", "inspect", name)
	if err != nil {
		if re, ok := cmdrun.IsRunError(err); ok && isNoSuch(re.Output()) {
			return nil, fmt.Errorf("container %q: %w", name, ErrNotFound)
		}
		return nil, err
	}
	var list []inspectJSON
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("parsing %s container inspect %s: %w", c.Name(), name, err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("container %q: %w", name, ErrNotFound)
	}
	in := list[0]
	ct := &Container{
		Name:          strings.TrimPrefix(in.Name, "/"),
		ID:            in.ID,
		Image:         in.Config.Image,
		ImageID:       in.Image,
		Running:       in.State.Running,
		PID:           in.State.Pid,
		Networks:      map[string]string{},
		Ports:         map[string][]string{},
		RestartPolicy: in.HostConfig.RestartPolicy.Name,
		Labels:        in.Config.Labels,
	}
	for n, v := range in.NetworkSettings.Networks {
		ct.Networks[n] = v.IPAddress
	}
	for p, bs := range in.HostConfig.PortBindings {
		for _, b := range bs {
			ct.Ports[p] = append(ct.Ports[p], b.HostIP+":"+b.HostPort)
		}
	}
	return ct, nil
}

func isNoSuch(out string) bool {
	o := strings.ToLower(out)
	return strings.Contains(o, "no such container") || strings.Contains(o, "no such object") ||
		strings.Contains(o, "no container with name or id")
}

// PID returns the host PID of a running container's init process, the way
// into its network namespace (/proc/<pid>/ns/net).
func (c CLI) PID(ctx context.Context, name string) (int, error) {
	out, err := c.run(ctx, "container", "inspect", "--format", "{{.State.Pid}}", name)
	if err != nil {
		if re, ok := cmdrun.IsRunError(err); ok && isNoSuch(re.Output()) {
			return 0, fmt.Errorf("container %q: %w", name, ErrNotFound)
		}
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, fmt.Errorf("container %q: unexpected PID %q", name, strings.TrimSpace(string(out)))
	}
	if pid <= 0 {
		return 0, fmt.Errorf("container %q is not running", name)
	}
	return pid, nil
}

// Exec runs a command inside a running container and returns its stdout.
func (c CLI) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	return c.run(ctx, append([]string{"exec", name}, args...)...)
}

// ExecInput is Exec with standard input.
func (c CLI) ExecInput(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	return c.Run.Run(ctx, stdin, c.Bin, append([]string{"exec", "-i", name}, args...)...)
}

// Remove force-removes a container; a container that does not exist is not an error.
func (c CLI) Remove(ctx context.Context, name string) error {
	_, err := c.run(ctx, "rm", "--force", "--volumes", name)
	if err != nil {
		if re, ok := cmdrun.IsRunError(err); ok && isNoSuch(re.Output()) {
			return nil
		}
	}
	return err
}

// CopyFrom copies a file out of a container. src must not be a symlink
// (resolve it first with `readlink -f` in the container): docker and podman
// differ in how they follow links.
func (c CLI) CopyFrom(ctx context.Context, name, src, dst string) error {
	_, err := c.run(ctx, "cp", name+":"+src, dst)
	return err
}

// RunSpec describes a detached container to start.
type RunSpec struct {
	Name          string
	Image         string
	Network       string
	Publish       []string // e.g. "127.0.0.1:5000:5000"
	RestartPolicy string
	Labels        map[string]string
	Env           []string
	Args          []string
	// Privileged, Entrypoint (replacing the image's) and Tmpfs (paths
	// mounted as tmpfs) are for throwaway containers.
	Privileged bool
	Entrypoint string
	Tmpfs      []string
}

// RunDetached starts a container and returns its ID.
func (c CLI) RunDetached(ctx context.Context, s RunSpec) (string, error) {
	args := []string{"run", "--detach", "--name", s.Name}
	if s.Network != "" {
		args = append(args, "--network", s.Network)
	}
	for _, p := range s.Publish {
		args = append(args, "--publish", p)
	}
	if s.RestartPolicy != "" {
		args = append(args, "--restart", s.RestartPolicy)
	}
	for _, k := range sortedKeys(s.Labels) {
		args = append(args, "--label", k+"="+s.Labels[k])
	}
	for _, e := range s.Env {
		args = append(args, "--env", e)
	}
	if s.Privileged {
		args = append(args, "--privileged")
	}
	if s.Entrypoint != "" {
		args = append(args, "--entrypoint", s.Entrypoint)
	}
	for _, t := range s.Tmpfs {
		args = append(args, "--tmpfs", t)
	}
	args = append(args, s.Image)
	args = append(args, s.Args...)
	out, err := c.run(ctx, args...)
	return strings.TrimSpace(string(out)), err
}

// ImageExists reports whether the engine has the image locally.
func (c CLI) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, ok, err := c.LocalImageID(ctx, ref)
	return ok, err
}

// LocalImageID returns the ID of a local image, and false (no error) when
// the engine does not have it.
func (c CLI) LocalImageID(ctx context.Context, ref string) (string, bool, error) {
	out, err := c.run(ctx, "image", "inspect", "--format", "{{.Id}}", ref)
	if err == nil {
		return strings.TrimSpace(string(out)), true, nil
	}
	if re, ok := cmdrun.IsRunError(err); ok {
		o := strings.ToLower(re.Output())
		if strings.Contains(o, "no such image") || strings.Contains(o, "image not known") || strings.Contains(o, "failed to find image") {
			return "", false, nil
		}
	}
	return "", false, err
}

// FileInImage reports whether path names a file (symlinks followed) in a
// local image's file system, running readlink in a throwaway container
// without network (the image's entrypoint is not run).
func (c CLI) FileInImage(ctx context.Context, image, path string) (bool, error) {
	_, err := c.run(ctx, "run", "--rm", "--network", "none", "--entrypoint", "readlink", image, "-e", path)
	if err == nil {
		return true, nil
	}
	// readlink's own "no such file" is exit status 1; the engine's
	// failures are 125 to 127.
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == 1 {
		return false, nil
	}
	return false, err
}

// PullImage pulls an image into the engine.
func (c CLI) PullImage(ctx context.Context, ref string) error {
	_, err := c.run(ctx, "pull", ref)
	return err
}

// ImageCommand returns a local image's entrypoint and command.
func (c CLI) ImageCommand(ctx context.Context, ref string) (entrypoint, cmd []string, err error) {
	out, err := c.run(ctx, "image", "inspect", "--format", "{{json .Config.Entrypoint}} {{json .Config.Cmd}}", ref)
	if err != nil {
		return nil, nil, err
	}
	ep, rest, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if err := json.Unmarshal([]byte(ep), &entrypoint); err != nil {
		return nil, nil, fmt.Errorf("image %s: entrypoint %q: %w", ref, ep, err)
	}
	if err := json.Unmarshal([]byte(rest), &cmd); err != nil {
		return nil, nil, fmt.Errorf("image %s: command %q: %w", ref, rest, err)
	}
	return entrypoint, cmd, nil
}

// StopContainer stops a running container (SIGTERM, then SIGKILL after
// 30 s).
func (c CLI) StopContainer(ctx context.Context, name string) error {
	_, err := c.run(ctx, "stop", "--time", "30", name)
	return err
}

// CommitContainer makes an image of a container's file system. changes
// are Dockerfile instructions (ENTRYPOINT, CMD, LABEL) applied to the
// image's configuration.
func (c CLI) CommitContainer(ctx context.Context, name, ref string, changes ...string) error {
	args := []string{"commit"}
	for _, ch := range changes {
		args = append(args, "--change", ch)
	}
	_, err := c.run(ctx, append(args, name, ref)...)
	return err
}

// ImagesWithLabel lists the local images (repository:tag) that carry
// label (key=value).
func (c CLI) ImagesWithLabel(ctx context.Context, label string) ([]string, error) {
	out, err := c.run(ctx, "images", "--filter", "label="+label, "--format", "{{.Repository}}:{{.Tag}}")
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// RemoveImage removes a local image by name; an image still in use by a
// container is not removed (an error).
func (c CLI) RemoveImage(ctx context.Context, ref string) error {
	_, err := c.run(ctx, "rmi", ref)
	return err
}

// ImageID returns the engine's ID of a local image.
func (c CLI) ImageID(ctx context.Context, ref string) (string, error) {
	out, err := c.run(ctx, "image", "inspect", "--format", "{{.Id}}", ref)
	return strings.TrimSpace(string(out)), err
}

// SaveImages writes local images into one archive file (docker-archive
// format, layers shared between the images written once), as
// `ctr images import` and `kind load image-archive` read it.
func (c CLI) SaveImages(ctx context.Context, file string, refs ...string) error {
	args := []string{"save", "-o", file}
	if c.Name() == "podman" && len(refs) > 1 {
		args = append(args, "--multi-image-archive")
	}
	_, err := c.run(ctx, append(args, refs...)...)
	return err
}

// Ping checks that the engine answers.
func (c CLI) Ping(ctx context.Context) error {
	_, err := c.run(ctx, "version", "--format", "{{.Server.Version}}")
	return err
}

// NetworkContainers lists the names of containers attached to a network.
// A network that does not exist has none.
func (c CLI) NetworkContainers(ctx context.Context, network string) ([]string, error) {
	out, err := c.run(ctx, "network", "inspect", "--format", "{{range .Containers}}{{.Name}} {{end}}", network)
	if err != nil {
		if re, ok := cmdrun.IsRunError(err); ok && strings.Contains(strings.ToLower(re.Output()), "not found") {
			return nil, nil
		}
		if re, ok := cmdrun.IsRunError(err); ok && strings.Contains(strings.ToLower(re.Output()), "no such network") {
			return nil, nil
		}
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// ListContainers returns the names of containers (running or not) whose
// label matches key=value.
func (c CLI) ListContainers(ctx context.Context, label string) ([]string, error) {
	out, err := c.run(ctx, "ps", "--all", "--filter", "label="+label, "--format", "{{.Names}}")
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}
