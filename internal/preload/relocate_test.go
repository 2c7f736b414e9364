package preload

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// localExec runs Relocate's scripts here, with a ctr of the test's making
// first on PATH, as if in the container.
type localExec struct {
	path string // the fake ctr's directory
	env  []string
}

func (l localExec) Exec(ctx context.Context, _ string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "PATH="+l.path+":"+os.Getenv("PATH"))
	cmd.Env = append(cmd.Env, l.env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, stderr.String())
	}
	return out, nil
}

// fakeCtr answers what the scripts ask: the namespaces, the snapshots
// ($SNAPSHOTS_LS), a mount that succeeds when every layer's directory can
// be read through its fs (a link followed), or fails when $MOUNT_FAILS
// names the image, and the garbage collection; $MOUNTED records the
// mounts and the collection.
const fakeCtr = `#!/bin/sh
case "$*" in
"namespaces ls -q") echo k8s.io ;;
*"snapshots ls") printf 'KEY PARENT KIND\n%b' "$SNAPSHOTS_LS" ;;
*"images mount "*)
	ref=$4
	[ "$ref" = "${MOUNT_FAILS:-}" ] && { echo "mount failed: invalid argument" >&2; exit 1; }
	for d in "$SNAPS"/*; do ls "$d/fs/" >/dev/null || exit 1; done
	echo "$ref" >>"$MOUNTED"
	;;
*"images unmount --rm "*) ;;
*"leases delete --sync "*) echo collected >>"$MOUNTED" ;;
*"leases create "*) ;;
*) echo "unexpected ctr $*" >&2; exit 2 ;;
esac
`

type relocateFixture struct {
	snaps, dest, mounted string
	exec                 localExec
}

// newRelocateFixture makes two committed snapshots, 1 and 2, each with
// a file, under a fresh snapshots directory.
func newRelocateFixture(t *testing.T, env ...string) relocateFixture {
	t.Helper()
	dir := t.TempDir()
	f := relocateFixture{
		snaps:   filepath.Join(dir, "var/snapshots"),
		dest:    filepath.Join(dir, "kind/preload/layers"),
		mounted: filepath.Join(dir, "mounted"),
	}
	bin := filepath.Join(dir, "bin")
	for _, d := range []string{bin, f.snaps + "/1/fs/etc", f.snaps + "/1/work", f.snaps + "/2/fs/usr", f.snaps + "/2/work"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]string{f.snaps + "/1/fs/etc/a": "a\n", f.snaps + "/2/fs/usr/b": "b\n"} {
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "ctr"), []byte(fakeCtr), 0o755); err != nil {
		t.Fatal(err)
	}
	f.exec = localExec{path: bin, env: append([]string{"SNAPS=" + f.snaps, "MOUNTED=" + f.mounted,
		`SNAPSHOTS_LS=k1  Committed\nk2 k1 Committed\n`}, env...)}
	return f
}

func (f relocateFixture) run(t *testing.T, refs ...string) Relocated {
	t.Helper()
	r, err := relocate(context.Background(), f.exec, "builder", f.snaps, f.dest, refs)
	if err != nil {
		t.Fatalf("relocate: %v", err)
	}
	return r
}

// readFS reads a file through snapshot id's fs, as an overlayfs mount
// would find it, and says whether fs is a link.
func (f relocateFixture) readFS(t *testing.T, id, file string) (string, bool) {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(f.snaps, id, "fs"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(f.snaps, id, "fs", file))
	if err != nil {
		t.Fatal(err)
	}
	return string(b), fi.Mode()&os.ModeSymlink != 0
}

// Every committed snapshot's files move out, a link to them in their
// place; the work directories stay; each image was mounted through the
// links; a second run moves nothing more.
func TestRelocateMovesCommittedLayers(t *testing.T) {
	f := newRelocateFixture(t)
	if r := f.run(t, "img:1", "img:2"); r != (Relocated{Moved: 2}) {
		t.Fatalf("got %+v, want 2 moved", r)
	}
	for id, file := range map[string]string{"1": "etc/a", "2": "usr/b"} {
		data, link := f.readFS(t, id, file)
		if !link || data != file[len(file)-1:]+"\n" {
			t.Errorf("snapshot %s: link %v, %s holds %q", id, link, file, data)
		}
		if target, _ := os.Readlink(filepath.Join(f.snaps, id, "fs")); target != filepath.Join(f.dest, id) {
			t.Errorf("snapshot %s links to %s, want %s", id, target, filepath.Join(f.dest, id))
		}
		if fi, err := os.Lstat(filepath.Join(f.snaps, id, "work")); err != nil || !fi.IsDir() {
			t.Errorf("snapshot %s: work is not a directory any more (%v)", id, err)
		}
	}
	if b, _ := os.ReadFile(f.mounted); string(b) != "img:1\nimg:2\ncollected\n" {
		t.Errorf("mounted %q, want img:1 and img:2, then the garbage collected", b)
	}
	if r := f.run(t, "img:1"); r != (Relocated{Moved: 0}) {
		t.Errorf("second run: %+v, want nothing moved", r)
	}
	if s := (Result{Unpacked: []string{"img:1", "img:2"}, Layers: Relocated{Moved: 2}}).String(); !strings.Contains(s, "2 unpacked layers moved out of /var") {
		t.Errorf("summary %q", s)
	}
}

// An image that cannot be mounted through the links afterwards (an
// overlayfs that does not nest once more) puts every layer back.
func TestRelocateMovesBackWhenAMountFails(t *testing.T) {
	f := newRelocateFixture(t, "MOUNT_FAILS=img:2")
	r := f.run(t, "img:1", "img:2")
	if !strings.Contains(r.Kept, "img:2 could not be mounted through the moved layers: mount failed: invalid argument") {
		t.Errorf("got %+v, want kept for img:2's mount", r)
	}
	for id, file := range map[string]string{"1": "etc/a", "2": "usr/b"} {
		if _, link := f.readFS(t, id, file); link {
			t.Errorf("snapshot %s: still a link", id)
		}
	}
	if _, err := os.Stat(f.dest); !os.IsNotExist(err) {
		t.Errorf("%s left behind (%v)", f.dest, err)
	}
	if !strings.Contains(Result{Layers: r}.String(), "unpacked layers kept in /var (img:2 could not be mounted") {
		t.Errorf("summary %q", Result{Layers: r}.String())
	}
}

// A snapshot that is not committed (a container's upper layer, which must
// stay on /var) keeps every layer where it is.
func TestRelocateKeepsEverythingBesideAnActiveSnapshot(t *testing.T) {
	f := newRelocateFixture(t, `SNAPSHOTS_LS=k1  Committed\nk2 k1 Active\n`)
	r := f.run(t, "img:1")
	if r.Kept != "a snapshot of namespace k8s.io is not committed" {
		t.Errorf("got %+v", r)
	}
	if _, link := f.readFS(t, "1", "etc/a"); link {
		t.Error("snapshot 1 moved")
	}
}

// No snapshots directory (another snapshotter): nothing to do.
func TestRelocateWithoutSnapshots(t *testing.T) {
	f := newRelocateFixture(t)
	f.snaps += "-none"
	if r := f.run(t, "img:1"); !strings.HasPrefix(r.Kept, "no overlayfs snapshots at ") {
		t.Errorf("got %+v", r)
	}
}

func TestParseRelocate(t *testing.T) {
	for out, want := range map[string]Relocated{
		"moved 12\n":                       {Moved: 12},
		"noise\nkept it failed: because\n": {Kept: "it failed: because"},
	} {
		if got, err := parseRelocate(out); err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", out, got, err, want)
		}
	}
	if _, err := parseRelocate("mv: cannot move\n"); err == nil || !strings.Contains(err.Error(), "no word of the outcome") {
		t.Errorf("garbage: %v", err)
	}
}
