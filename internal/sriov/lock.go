package sriov

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
	return acquireLockFile(ctx, stateDir, lockPath(stateDir), who, timeout, notify)
}

// ClusterLockPath is the lock that one cluster-up of a cluster holds from
// start to end, host-wide, so that a second one (two terminals, a retried
// CI job) waits and then finds the cluster up, instead of racing the first.
func ClusterLockPath(stateDir, cluster string) string {
	return filepath.Join(stateDir, "cluster-up-"+cluster+".lock")
}

// LockCluster takes ClusterLockPath, waiting for it (bounded by timeout
// and ctx); notify is called once if another process holds it, with what
// that one wrote in it. release gives it back.
func LockCluster(ctx context.Context, stateDir, cluster string, timeout time.Duration, notify func(holder string)) (release func(), err error) {
	l, err := acquireLockFile(ctx, stateDir, ClusterLockPath(stateDir, cluster), "cluster-up of "+cluster, timeout, notify)
	if err != nil {
		return nil, err
	}
	return l.release, nil
}

func acquireLockFile(ctx context.Context, stateDir, p, who string, timeout time.Duration, notify func(holder string)) (*hostLock, error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, fmt.Errorf("SR-IOV state directory (SRIOV_STATE_DIR=%s): %w", stateDir, err)
	}
	if err := checkStateDir(stateDir); err != nil {
		return nil, err
	}
	// Not through a symbolic link: the file is truncated and written.
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("SR-IOV lock %s: %w (it must be a regular file, not a symbolic link)", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
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
		_, _ = f.WriteAt([]byte(fmt.Sprintf("%s (pid %d) since %s\n", who, os.Getpid(), time.Now().Format(time.RFC3339))), 0)
	}
	return &hostLock{f: f}, nil
}

// checkStateDir refuses a state directory that another user could write
// to: the ledgers in it are read back as root and name the sysfs paths and
// links cluster-down acts on.
func checkStateDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("SR-IOV state directory (SRIOV_STATE_DIR=%s): %w", dir, err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	switch {
	case !st.IsDir():
		return fmt.Errorf("SRIOV_STATE_DIR=%s is not a directory", dir)
	case ok && int(sys.Uid) != os.Geteuid() && sys.Uid != 0:
		return fmt.Errorf("SRIOV_STATE_DIR=%s belongs to user %d, not to this user (%d) or root: another user could plant ledgers there; use a directory of your own (default %s)", dir, sys.Uid, os.Geteuid(), DefaultStateDir)
	case st.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("SRIOV_STATE_DIR=%s is writable by group or others (mode %o): another user could plant ledgers there; chmod go-w it", dir, st.Mode().Perm())
	}
	return nil
}

// checkState runs, before anything is created, the checks the lock makes
// when it is taken: the state directory (when it exists) must be one no
// other user can write to, and its lock no symbolic link.
func checkState(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil // made, as root's, when the lock is first taken
	}
	if err := checkStateDir(dir); err != nil {
		return err
	}
	p := lockPath(dir)
	if st, err := os.Lstat(p); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("SR-IOV lock %s is not a regular file (%s): the lock is never opened through a link; remove it (SRIOV_STATE_DIR=%s)", p, st.Mode().Type(), dir)
	}
	return nil
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
