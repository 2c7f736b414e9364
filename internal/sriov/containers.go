package sriov

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
)

// ContainerNodes implements Nodes and NodeExec with a container CLI
// (docker or podman), for kind nodes.
type ContainerNodes struct {
	Run cmdrun.Runner
	CLI string // "docker" or "podman"
}

// PID is the node container's main process, 0 with an error when it is not running.
func (c ContainerNodes) PID(ctx context.Context, node string) (int, error) {
	out, err := c.Run.Run(ctx, nil, c.CLI, "inspect", "--format", "{{.State.Pid}}", node)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(out))
	pid, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s inspect %s: PID %q is not a number", c.CLI, node, s)
	}
	if pid <= 0 {
		return 0, fmt.Errorf("container %s is not running", node)
	}
	return pid, nil
}

// Exec runs args in the node container.
func (c ContainerNodes) Exec(ctx context.Context, node string, args ...string) ([]byte, error) {
	return c.Run.Run(ctx, nil, c.CLI, append([]string{"exec", node}, args...)...)
}
