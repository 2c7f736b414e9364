// Package toolbuild tells whether the tool's binary is older than its
// sources, so that the mage targets rebuild it only when it may have
// changed: `go build` of the whole graph costs a second or more even when
// nothing changed, on every command a person types.
package toolbuild

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// skipDirs are folders of the checkout that hold no source of the tool
// (magefiles is mage's, and mage writes there as it runs).
var skipDirs = map[string]bool{".git": true, "_out": true, "_ci-configs": true, "testdata": true, "docs": true, "magefiles": true, "scripts": true, "test": true, "cluster-up": true}

// Stale reports whether bin must be rebuilt from the module in root: it is
// missing, or a file of the module (tests and documents aside), or a folder
// of the module (a file added, removed or renamed changes its
// folder's time) is newer than it. why names the first newer path found.
// It reads only file times: a few milliseconds for this module.
func Stale(root, bin string) (stale bool, why string, err error) {
	st, err := os.Stat(bin)
	if errors.Is(err, os.ErrNotExist) {
		return true, bin + " does not exist", nil
	}
	if err != nil {
		return false, "", err
	}
	built := st.ModTime()
	errFound := errors.New("found")
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p == root {
				// Its time changes with every _ci-configs and _out made
				// or removed; a source added there is newer itself.
				return nil
			}
			if skipDirs[name] || strings.HasPrefix(name, ".") {
				return filepath.SkipDir
			}
		} else if !source(name) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.ModTime().After(built) {
			why = p + " is newer than " + bin
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		return true, why, nil
	}
	return false, "", err
}

// source reports whether a file may change the tool's binary: any file
// but tests and documents (the packages embed manifests and the images'
// configuration files, some without an extension). A script changing
// costs a needless build, a missed source would run the tool stale.
func source(name string) bool {
	return !strings.HasSuffix(name, "_test.go") && !strings.HasSuffix(name, ".md")
}
