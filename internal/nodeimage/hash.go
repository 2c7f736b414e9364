package nodeimage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// recipe is bumped when the way an image is assembled changes in a way the
// hashed inputs do not show.
const recipe = "1"

// hasher accumulates the inputs of a build into one hash.
type hasher struct {
	h   io.Writer
	sum func() []byte
}

func newHasher() *hasher {
	h := sha256.New()
	return &hasher{h: h, sum: func() []byte { return h.Sum(nil) }}
}

// add hashes strings, each followed by a separator.
func (h *hasher) add(parts ...string) {
	for _, p := range parts {
		fmt.Fprintf(h.h, "%d:%s\n", len(p), p)
	}
}

// addFS hashes every regular file and symlink under root in fsys (name, mode
// bit 0100 and content), in a stable order. skip, when set, leaves out files
// (by slash path relative to fsys's root).
func (h *hasher) addFS(fsys fs.FS, root string, skip func(string) bool) error {
	var names []string
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if skip != nil && skip(p) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		info, err := fs.Stat(fsys, n)
		if err != nil {
			return err
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return err
		}
		h.add(n, fmt.Sprint(info.Mode().Perm()&0o100 != 0), string(b))
	}
	return nil
}

// addDir hashes a directory of the file system, as addFS does.
func (h *hasher) addDir(dir string, skip func(string) bool) error {
	h.add("dir", filepath.Base(dir))
	return h.addFS(os.DirFS(dir), ".", skip)
}

// hex returns the hash so far.
func (h *hasher) hex() string { return hex.EncodeToString(h.sum()) }

// skipTests leaves out Go test files and test data.
func skipTests(p string) bool {
	return strings.HasSuffix(p, "_test.go") || filepath.Base(p) == "testdata"
}
