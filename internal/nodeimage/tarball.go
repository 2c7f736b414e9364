package nodeimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// entry is one file of a layer built in memory.
type entry struct {
	Path     string // absolute path in the image, e.g. /usr/bin/kubelet
	Mode     int64  // permission bits
	Data     []byte // content of a regular file
	Src      string // a host file to copy instead of Data
	Dir      bool
	Linkname string // the target of a symbolic link
}

// epoch is the modification time of generated files: builds are reproducible.
var epoch = time.Unix(0, 0)

// writeEntries writes entries as a tar stream. Parent directories that are
// not listed are added (0755), so that the tar extracts anywhere.
func writeEntries(w io.Writer, entries []entry) error {
	tw := tar.NewWriter(w)
	seen := map[string]bool{}
	var mkdirs func(dir string) error
	mkdirs = func(dir string) error {
		if dir == "/" || dir == "." || seen[dir] {
			return nil
		}
		if err := mkdirs(path.Dir(dir)); err != nil {
			return err
		}
		seen[dir] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(dir, "/") + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	sorted := append([]entry(nil), entries...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	for _, e := range sorted {
		p := path.Clean("/" + e.Path)
		if err := mkdirs(path.Dir(p)); err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "/")
		hdr := &tar.Header{Name: name, Mode: e.Mode, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case e.Dir:
			if seen[p] {
				continue
			}
			seen[p] = true
			hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
			if hdr.Mode == 0 {
				hdr.Mode = 0o755
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		case e.Linkname != "":
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, e.Linkname, 0o777
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		default:
			data := e.Data
			if e.Src != "" {
				f, err := os.Open(e.Src)
				if err != nil {
					return err
				}
				st, err := f.Stat()
				if err != nil {
					f.Close()
					return err
				}
				hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size()
				if hdr.Mode == 0 {
					hdr.Mode = int64(st.Mode().Perm())
				}
				if err := tw.WriteHeader(hdr); err != nil {
					f.Close()
					return err
				}
				_, err = io.Copy(tw, f)
				f.Close()
				if err != nil {
					return fmt.Errorf("%s: %w", e.Src, err)
				}
				continue
			}
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(data))
			if hdr.Mode == 0 {
				hdr.Mode = 0o644
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := tw.Write(data); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// tarEntries returns entries as a tar archive in memory (small layers only).
func tarEntries(entries []entry) ([]byte, error) {
	var buf bytes.Buffer
	err := writeEntries(&buf, entries)
	return buf.Bytes(), err
}

// writeEntriesFile writes entries as a tar file.
func writeEntriesFile(file string, entries []entry) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := writeEntries(f, entries); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// skipTreePaths are left out of a root file system archive: the engine
// provides them when the container runs.
var skipTreePaths = map[string]bool{"dev": true, "proc": true, "sys": true, "run": true, "tmp": true}

// writeTree writes the directory tree root as a tar stream, keeping owners,
// modes, symlinks and hard links. The contents of /dev, /proc, /sys, /run
// and /tmp are left out (the directories themselves are kept).
func writeTree(w io.Writer, root string) error {
	tw := tar.NewWriter(w)
	inodes := map[[2]uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if top, _, nested := strings.Cut(rel, "/"); nested && skipTreePaths[top] {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode()&(fs.ModeSocket|fs.ModeNamedPipe|fs.ModeDevice|fs.ModeCharDevice) != 0 {
			return nil
		}
		var link string
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		hdr.Name = rel
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		hdr.Format = tar.FormatPAX
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && info.Mode().IsRegular() && st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if first, ok := inodes[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				return tw.WriteHeader(hdr)
			}
			inodes[key] = rel
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// writeTreeFile writes the tree root as a tar file.
func writeTreeFile(file, root string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := writeTree(f, root); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
