//go:build linux

// Package cgroupv1 finds and removes cgroup v1 hierarchies that a kind
// cluster left behind on a cgroup v1 host.
//
// Older kind node images (kind 0.11.1's, for one) mount, inside the node,
// the v1 controllers that the host itself does not mount (on a typical
// hybrid host: hugetlb, perf_event, net_cls,net_prio). That binds those
// controllers to new v1 hierarchies, and the kubelet in the node creates
// cgroups there. When the node goes, the cgroups stay, and with them the
// hierarchies: no mount on the host shows them, but /proc/cgroups does.
// While they are there, later kind nodes fail to start (the kubelet reports
// `cgroup-root ["kubelet"] doesn't exist`). Removing the empty cgroups of
// such a hierarchy (through a temporary mount of it) lets the kernel free
// it, and the controllers go back to the host's default hierarchy.
package cgroupv1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Hierarchy is a cgroup v1 hierarchy that no mount of this process's mount
// namespace shows and that holds cgroups below its root.
type Hierarchy struct {
	ID          int
	Controllers []string // as in /proc/cgroups, e.g. net_cls, net_prio
	Cgroups     int      // the cgroups in it, its root included
}

func (h Hierarchy) String() string {
	return fmt.Sprintf("%s (%d cgroups)", strings.Join(h.Controllers, ","), h.Cgroups)
}

// Find lists the hidden hierarchies, reading <proc>/cgroups and
// <proc>/self/mountinfo (proc is normally /proc).
func Find(proc string) ([]Hierarchy, error) {
	cg, err := os.ReadFile(filepath.Join(proc, "cgroups"))
	if err != nil {
		return nil, err
	}
	mi, err := os.ReadFile(filepath.Join(proc, "self", "mountinfo"))
	if err != nil {
		return nil, err
	}
	return parse(string(cg), string(mi))
}

func parse(cgroups, mountinfo string) ([]Hierarchy, error) {
	mounted := map[string]bool{} // controllers of the v1 mounts
	for _, line := range strings.Split(mountinfo, "\n") {
		// ... mount options - fstype source super-options
		_, after, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f := strings.Fields(after)
		if len(f) < 3 || f[0] != "cgroup" {
			continue
		}
		for _, o := range strings.Split(f[2], ",") {
			mounted[o] = true
		}
	}
	byID := map[int]*Hierarchy{}
	sc := bufio.NewScanner(strings.NewReader(cgroups))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		id, err1 := strconv.Atoi(f[1])
		n, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("/proc/cgroups: cannot read the line %q", sc.Text())
		}
		if id == 0 || f[3] != "1" {
			continue // the v2 hierarchy, or disabled
		}
		h := byID[id]
		if h == nil {
			h = &Hierarchy{ID: id, Cgroups: n}
			byID[id] = h
		}
		h.Controllers = append(h.Controllers, f[0])
	}
	var out []Hierarchy
	for _, h := range byID {
		seen := false
		for _, c := range h.Controllers {
			seen = seen || mounted[c]
		}
		// With only its root left it is still there, unmounted: a mount
		// and unmount frees it.
		if !seen {
			out = append(out, *h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Remove mounts each hierarchy on a temporary folder, removes every cgroup
// below its root, deepest first, waits until the kernel has released them,
// and unmounts it; the kernel then frees the hierarchy and its controllers
// go back to the host's default hierarchy. A cgroup that still holds a
// process cannot be removed: the error names it. Call it only when no
// container that may use these hierarchies (a kind node) runs.
func Remove(hs []Hierarchy) error {
	var errs []error
	for _, h := range hs {
		if err := remove(h); err != nil {
			errs = append(errs, fmt.Errorf("cgroup v1 hierarchy %s: %w", h, err))
		}
	}
	return errors.Join(errs...)
}

// procCgroups is read to follow the kernel's release of cgroups.
var procCgroups = "/proc/cgroups"

// count is how many cgroups hierarchy id holds (0 when it is gone).
func count(id int, controller string) (int, error) {
	b, err := os.ReadFile(procCgroups)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == controller {
			if hid, _ := strconv.Atoi(f[1]); hid != id {
				return 0, nil
			}
			return strconv.Atoi(f[2])
		}
	}
	return 0, nil
}

func remove(h Hierarchy) error {
	// An unmount frees the hierarchy only if it has no cgroup but its root
	// by then; removed cgroups are released asynchronously, so it is tried
	// again while the hierarchy is still there.
	for attempt := 1; ; attempt++ {
		if err := emptyAndUnmount(h); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(context.Context) (bool, error) {
			n, err := count(h.ID, h.Controllers[0])
			return n == 0, err
		})
		cancel()
		if err == nil {
			return nil
		}
		if attempt == 3 {
			n, _ := count(h.ID, h.Controllers[0])
			return fmt.Errorf("still there with %d cgroups after %d tries", n, attempt)
		}
	}
}

// emptyAndUnmount mounts the hierarchy, removes every cgroup below its root, waits
// (bounded) until the kernel has released them, and unmounts it.
func emptyAndUnmount(h Hierarchy) error {
	dir, err := os.MkdirTemp("", "kubevirtci-cgroup-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	opts := strings.Join(h.Controllers, ",")
	if err := unix.Mount("cgroup", dir, "cgroup", 0, opts); err != nil {
		return fmt.Errorf("mount -t cgroup -o %s: %w", opts, err)
	}
	defer unix.Unmount(dir, 0)
	var dirs []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Deepest first: a cgroup can be removed once it has no child.
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	var busy []string
	for _, d := range dirs {
		if err := unix.Rmdir(d); err != nil {
			busy = append(busy, fmt.Sprintf("%s (%v)", strings.TrimPrefix(d, dir), err))
		}
	}
	if len(busy) > 0 {
		return fmt.Errorf("%d cgroups could not be removed: %s", len(busy), strings.Join(busy, ", "))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(context.Context) (bool, error) {
		n, err := count(h.ID, h.Controllers[0])
		return n <= 1, err
	})
	return nil
}

// Unified reports whether the host mounts the unified cgroup v2 hierarchy
// at /sys/fs/cgroup (a cgroup v2 host) rather than cgroup v1 controllers (a
// v1 or hybrid host).
func Unified() (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return false, fmt.Errorf("statfs /sys/fs/cgroup: %w", err)
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC, nil
}
