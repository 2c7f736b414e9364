// Package sriovvm boots a QEMU VM with emulated SR-IOV NICs (igb, an Intel
// 82576 with up to 7 VFs per PF) and runs the provider's SR-IOV code, the
// device plugin and sriov-cni there on the real Linux drivers (igb, igbvf,
// vfio-pci). See vm_test.go; `make e2e-sriov-vm` runs it.
package sriovvm

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// file is one entry of the initramfs.
type file struct {
	Mode     uint32 // permission bits
	Data     []byte
	Src      string // a host file to copy instead of Data
	Dir      bool
	Linkname string
}

// writeInitramfs writes files (keyed by absolute path) as a cpio archive
// in the "newc" format the kernel unpacks. Parent directories are added as
// needed. It is not compressed: under emulation, inflating it in the guest
// costs more than QEMU loading a bigger file.
func writeInitramfs(w io.Writer, files map[string]file) error {
	all := map[string]file{}
	for p, f := range files {
		all[path.Clean(p)] = f
		for d := path.Dir(path.Clean(p)); d != "/"; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = file{Dir: true, Mode: 0o755}
			}
		}
	}
	names := make([]string, 0, len(all))
	for p := range all {
		names = append(names, p)
	}
	sort.Strings(names) // parents before children
	zw := bufio.NewWriterSize(w, 1<<20)
	ino := uint32(1)
	for _, p := range names {
		f := all[p]
		data := f.Data
		if f.Src != "" {
			b, err := os.ReadFile(f.Src)
			if err != nil {
				return err
			}
			data = b
		}
		mode := f.Mode
		switch {
		case f.Dir:
			mode |= 0o040000
			data = nil
		case f.Linkname != "":
			mode = 0o120777
			data = []byte(f.Linkname)
		default:
			mode |= 0o100000
		}
		if err := cpioEntry(zw, strings.TrimPrefix(p, "/"), ino, mode, data); err != nil {
			return err
		}
		ino++
	}
	if err := cpioEntry(zw, "TRAILER!!!", 0, 0, nil); err != nil {
		return err
	}
	return zw.Flush()
}

func cpioEntry(w io.Writer, name string, ino, mode uint32, data []byte) error {
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	if _, err := io.WriteString(w, hdr+name+"\x00"); err != nil {
		return err
	}
	if err := pad(w, len(hdr)+len(name)+1); err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	return pad(w, len(data))
}

// pad writes zeros up to the next multiple of 4.
func pad(w io.Writer, n int) error {
	if r := n % 4; r != 0 {
		_, err := w.Write(make([]byte, 4-r))
		return err
	}
	return nil
}
