package sriov

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// hostLock is an exclusive flock on <state dir>/lock, shared by every
// cluster on the host whatever checkout it comes from. The kernel drops it
// when the process dies, so a crash never leaves it held.
type hostLock struct{ f *os.File }

func lockPath(stateDir string) string { return filepath.Join(stateDir, "lock") }

// acquireLock waits (bounded by timeout and ctx) for the lock. notify is
// called once if the lock is busy, with what the holder wrote in the file.
func acquireLock(ctx context.Context, stateDir, who string, timeout time.Duration, notify func(holder string)) (*hostLock, error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, fmt.Errorf("SR-IOV state directory (SRIOV_STATE_DIR=%s): %w", stateDir, err)
	}
	p := lockPath(stateDir)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("SR-IOV lock: %w", err)
	}
	holder := func() string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	notified := false
	err = poll(ctx, timeout, "the host-wide SR-IOV lock "+p, func() (bool, error) {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return false, fmt.Errorf("lock %s: %w", p, err)
		}
		if !notified && notify != nil {
			notified = true
			notify(holder())
		}
		return false, nil
	})
	if err != nil {
		f.Close()
		if h := holder(); h != "" {
			return nil, fmt.Errorf("%w (held by %s)", err, h)
		}
		return nil, err
	}
	// Tell whoever waits next who holds it.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(fmt.Sprintf("%s (pid %d) since %s\n", who, os.Getpid(), time.Now().Format(time.RFC3339))), 0)
	}
	return &hostLock{f: f}, nil
}

func (l *hostLock) release() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Truncate(0)
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
	l.f = nil
}
