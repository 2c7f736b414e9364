package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// capNames maps capability names to their numbers (linux/capability.h).
var capNames = map[string]uint{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
	"CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
	"CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
	"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
	"CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
	"CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
	"CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
	"CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
	"CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
	"CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
	"CAP_CHECKPOINT_RESTORE": 40,
}

// capSets are the five capability sets of an OCI process.
var capSets = []string{"bounding", "effective", "inheritable", "permitted", "ambient"}

// globalValueFlags are runc's global flags that take a value as the next argument.
var globalValueFlags = map[string]bool{
	"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true,
}

// target is a file the wrapper rewrites.
type target struct {
	Path string
	Spec bool // a whole runtime spec (config.json); otherwise a process object
}

// specTarget returns the file to rewrite for a runc command line (without
// argv[0]): the bundle's config.json for create and run, the process file
// for exec. ok is false for every other command.
func specTarget(args []string) (t target, ok bool) {
	i := 0
	for i < len(args) {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			break
		}
		if globalValueFlags[a] {
			i++
		}
		i++
	}
	if i >= len(args) {
		return target{}, false
	}
	cmd, rest := args[i], args[i+1:]
	switch cmd {
	case "create", "run":
		bundle := flagValue(rest, "--bundle", "-b")
		if bundle == "" {
			bundle = "."
		}
		return target{Path: filepath.Join(bundle, "config.json"), Spec: true}, true
	case "exec":
		p := flagValue(rest, "--process", "-p")
		if p == "" {
			return target{}, false
		}
		return target{Path: p}, true
	}
	return target{}, false
}

// flagValue finds a flag's value in args, in the forms "--name V", "--name=V",
// "-n V" and "-n=V". It stops at the first non-flag argument (the container ID).
func flagValue(args []string, long, short string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		for _, n := range []string{long, short} {
			if a == n && i+1 < len(args) {
				return args[i+1]
			}
			if strings.HasPrefix(a, n+"=") {
				return strings.TrimPrefix(a, n+"=")
			}
		}
	}
	return ""
}

// readBoundingSet reads CapBnd from a /proc/<pid>/status file.
func readBoundingSet(statusFile string) (uint64, error) {
	b, err := os.ReadFile(statusFile)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: bad CapBnd %q: %w", statusFile, v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("%s: no CapBnd line", statusFile)
}

// filterCaps keeps the capabilities present in the bounding set bnd. Names
// this program does not know are kept, so that runc decides about them.
func filterCaps(caps []string, bnd uint64) (kept []string, removed []string) {
	kept = []string{}
	for _, c := range caps {
		n, known := capNames[strings.ToUpper(c)]
		if known && (n >= 64 || bnd&(1<<n) == 0) {
			removed = append(removed, c)
			continue
		}
		kept = append(kept, c)
	}
	return kept, removed
}

// rewriteCapabilities filters the capability sets of a capabilities object
// (the value of "capabilities" in an OCI process). It reports whether anything changed.
func rewriteCapabilities(raw json.RawMessage, bnd uint64) (json.RawMessage, bool, error) {
	var sets map[string]json.RawMessage
	if err := json.Unmarshal(raw, &sets); err != nil {
		return nil, false, fmt.Errorf("capabilities: %w", err)
	}
	changed := false
	for _, name := range capSets {
		v, ok := sets[name]
		if !ok || string(v) == "null" {
			continue
		}
		var caps []string
		if err := json.Unmarshal(v, &caps); err != nil {
			return nil, false, fmt.Errorf("capabilities.%s: %w", name, err)
		}
		kept, removed := filterCaps(caps, bnd)
		if len(removed) == 0 {
			continue
		}
		b, err := json.Marshal(kept)
		if err != nil {
			return nil, false, err
		}
		sets[name] = b
		changed = true
	}
	if !changed {
		return raw, false, nil
	}
	out, err := json.Marshal(sets)
	return out, true, err
}

// RewriteProcess filters the capabilities of an OCI process object (the
// file given to `runc exec --process`).
func RewriteProcess(data []byte, bnd uint64) ([]byte, bool, error) {
	var proc map[string]json.RawMessage
	if err := json.Unmarshal(data, &proc); err != nil {
		return nil, false, fmt.Errorf("process: %w", err)
	}
	raw, ok := proc["capabilities"]
	if !ok || string(raw) == "null" {
		return data, false, nil
	}
	out, changed, err := rewriteCapabilities(raw, bnd)
	if err != nil || !changed {
		return data, false, err
	}
	proc["capabilities"] = out
	b, err := json.Marshal(proc)
	return b, true, err
}

// RewriteSpec filters the process capabilities of an OCI runtime spec
// (a bundle's config.json).
func RewriteSpec(data []byte, bnd uint64) ([]byte, bool, error) {
	var spec map[string]json.RawMessage
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, false, fmt.Errorf("config.json: %w", err)
	}
	raw, ok := spec["process"]
	if !ok || string(raw) == "null" {
		return data, false, nil
	}
	out, changed, err := RewriteProcess(raw, bnd)
	if err != nil || !changed {
		return data, false, err
	}
	spec["process"] = out
	b, err := json.Marshal(spec)
	return b, true, err
}

// rewriteFile rewrites a config.json (create/run) or a process file (exec) in place.
func rewriteFile(t target, bnd uint64) error {
	path := t.Path
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	rewrite := RewriteProcess
	if t.Spec {
		rewrite = RewriteSpec
	}
	out, changed, err := rewrite(data, bnd)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !changed {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp := path + ".capwrap"
	if err := os.WriteFile(tmp, out, st.Mode().Perm()); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
