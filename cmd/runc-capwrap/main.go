// Command runc-capwrap is an OCI runtime wrapper for hosts whose capability
// bounding set lacks some capabilities (some sandboxes and nested container
// hosts drop CAP_SYS_RESOURCE, for example).
//
// A privileged container asks for every capability. runc then fails with
// "unable to apply caps: operation not permitted", because a process cannot
// gain a capability that is missing from its bounding set. runc-capwrap
// removes, from the OCI process capabilities (bounding, effective,
// inheritable, permitted and ambient), every capability that is absent from
// its own bounding set, and then executes the real runc with the same
// arguments. It rewrites:
//
//   - the bundle's config.json for `runc create` and `runc run`
//     (`--bundle DIR`, `-b DIR`, or the current directory when not given);
//   - the process file for `runc exec --process FILE` (`-p FILE`).
//
// Every other command is passed through untouched.
//
// The real runc is found, in this order:
//
//  1. the first argument `--capwrap-runtime=PATH` (docker's daemon.json
//     "runtimeArgs" can pass it; it is removed before runc runs);
//  2. the environment variable RUNC_CAPWRAP_RUNTIME;
//  3. the first `runc` on PATH that is not this program itself.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// RuntimeFlag is the leading argument that names the real runc.
const RuntimeFlag = "--capwrap-runtime="

// RuntimeEnv names the real runc when RuntimeFlag is not given.
const RuntimeEnv = "RUNC_CAPWRAP_RUNTIME"

func main() {
	args := os.Args[1:]
	var runtime string
	if len(args) > 0 && strings.HasPrefix(args[0], RuntimeFlag) {
		runtime = strings.TrimPrefix(args[0], RuntimeFlag)
		args = args[1:]
	}
	if runtime == "" {
		runtime = os.Getenv(RuntimeEnv)
	}
	if runtime == "" {
		var err error
		runtime, err = findRunc()
		if err != nil {
			fail(err)
		}
	}

	if target, ok := specTarget(args); ok {
		bnd, err := readBoundingSet("/proc/self/status")
		if err != nil {
			fail(err)
		}
		if err := rewriteFile(target, bnd); err != nil {
			fail(err)
		}
	}

	argv := append([]string{runtime}, args...)
	if err := syscall.Exec(runtime, argv, os.Environ()); err != nil {
		fail(fmt.Errorf("exec %s: %w", runtime, err))
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "runc-capwrap: %v\n", err)
	os.Exit(1)
}

// findRunc returns the first runc on PATH that is not this executable.
func findRunc() (string, error) {
	self, _ := os.Executable()
	selfReal, _ := filepath.EvalSymlinks(self)
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, "runc")
		st, err := os.Stat(p)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			continue
		}
		if r, err := filepath.EvalSymlinks(p); err == nil && selfReal != "" && r == selfReal {
			continue
		}
		return p, nil
	}
	return "", fmt.Errorf("no real runc found: pass %sPATH as the first argument, set %s, or put runc on PATH", RuntimeFlag, RuntimeEnv)
}
