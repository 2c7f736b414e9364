package sriov

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
	"github.com/kubevirt/kubevirtci-go/internal/step"
)

// Nodes gives the PID of a node container's main process, whose network
// namespace is the node's (e.g. `docker inspect -f '{{.State.Pid}}' <node>`).
// It must fail, or return 0, when the container is not running.
type Nodes interface {
	PID(ctx context.Context, node string) (int, error)
}

// Manager does the SR-IOV work for one cluster.
type Manager struct {
	opts Options
	sys  sysfs
	net  netOps
	run  cmdrun.Runner
	log  *step.Logger

	// Seams for tests.
	euid func() int
	// initialNetns tells whether this process is in the initial network
	// namespace (that of PID 1).
	initialNetns func() (bool, error)
	// uplinks returns the indexes of host links carrying a default route.
	uplinks func() (map[int]bool, error)
	hook    func(point string) // called at each step boundary of Up
}

// New checks opts (after filling in defaults) and returns a Manager. run
// runs modprobe; log may be nil.
func New(opts Options, run cmdrun.Runner, log *step.Logger) (*Manager, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if run == nil {
		run = cmdrun.Exec{}
	}
	return &Manager{
		opts:         opts,
		sys:          sysfs{root: opts.SysfsRoot},
		net:          kernelNet{},
		run:          run,
		log:          log,
		euid:         os.Geteuid,
		initialNetns: inInitialNetns,
		uplinks:      defaultRouteLinks,
	}, nil
}

// Options returns the options in use, defaults filled in.
func (m *Manager) Options() Options { return m.opts }

func (m *Manager) at(point string) {
	if m.hook != nil {
		m.hook(point)
	}
}

func (m *Manager) debugf(format string, args ...any) { m.log.Debugf(format, args...) }

// inInitialNetns compares this process's network namespace with PID 1's.
// Where PID 1's cannot be read (some sandboxes deny it even to root), it
// cannot tell and says yes.
func inInitialNetns() (bool, error) {
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return false, err
	}
	pid1, err := os.Readlink("/proc/1/ns/net")
	if errors.Is(err, fs.ErrPermission) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading PID 1's network namespace: %w", err)
	}
	return self == pid1, nil
}
