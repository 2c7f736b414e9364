package sriov

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// sysfs reads and writes the tree under a root. The root is a value, so that
// tests can use independent fake trees side by side.
type sysfs struct {
	root string
	// onWrite, when set, sees every write (tests record their order).
	onWrite func(path, value string)
}

func (s sysfs) path(parts ...string) string {
	return filepath.Join(append([]string{s.root}, parts...)...)
}

// pciDevice is the directory of a PCI device. It is global: it does not
// depend on the network namespace the device's netdev is in.
func (s sysfs) pciDevice(addr string) string { return s.path("bus", "pci", "devices", addr) }

func (s sysfs) driverDir(name string) string { return s.path("bus", "pci", "drivers", name) }

func (s sysfs) netDevice(name string) string { return s.path("class", "net", name, "device") }

func (s sysfs) readString(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func (s sysfs) readInt(p string) (int, error) {
	v, err := s.readString(p)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", p, v)
	}
	return n, nil
}

// write writes value to an existing sysfs file. It never creates a file: on
// a fake tree, a wrong path must fail as it would on the real sysfs.
func (s sysfs) write(p, value string) error {
	if s.onWrite != nil {
		s.onWrite(p, value)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
	if _, err := f.WriteString(value); err != nil {
		f.Close()
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
	return nil
}

// writeWithin is write with a time bound. Some sysfs writes can block in the
// kernel for as long as user space holds a device (removing VFs that a VM
// still uses through vfio); the write is left running and an error returned.
func (s sysfs) writeWithin(p, value string, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- s.write(p, value) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("write %q to %s did not return within %s (is a VF still in use, e.g. by a running VM?)", value, p, d)
	}
}

// linkBase is the last element of a symlink's target ("" if p does not exist).
func linkBase(p string) (string, error) {
	t, err := os.Readlink(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return filepath.Base(t), nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// pollBackoff checks at once, then backs off from 1ms to 50ms: a real
// kernel acts synchronously, the simulator within a few milliseconds.
var pollBackoff = wait.Backoff{Duration: time.Millisecond, Factor: 2, Cap: 50 * time.Millisecond, Steps: 10}

// poll calls cond until it reports true, it fails, ctx ends or timeout
// passes.
func poll(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := pollBackoff.DelayFunc().Until(tctx, true, false, func(context.Context) (bool, error) { return cond() })
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
	case errors.Is(err, context.DeadlineExceeded) && tctx.Err() != nil:
		return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
	}
	return err
}
