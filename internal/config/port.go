package config

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// CheckPortFree returns nil when a TCP listener can be opened on
// 127.0.0.1:port, which is where the local registry is published. Otherwise
// the error names HOST_PORT, says what holds the port when that can be seen
// cheaply (from /proc), and suggests a free port.
//
// Call it only when this cluster's own registry does not already hold the port.
func CheckPortFree(port int) error { return checkPortFree(port, "", "/proc") }

// CheckRegistryPortFree is CheckPortFree for c.RegistryHostPort, with a message
// that names this cluster.
func (c *Config) CheckRegistryPortFree() error {
	return checkPortFree(c.RegistryHostPort, c.ClusterName, "/proc")
}

func checkPortFree(port int, clusterName, procRoot string) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err == nil {
		_ = ln.Close()
		return nil
	}
	e := &SettingError{Name: EnvHostPort, Value: strconv.Itoa(port)}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		e.Problem = fmt.Sprintf("port %d on 127.0.0.1 is already in use", port)
		if who := describePortUser(procRoot, port); who != "" {
			e.Problem += " by " + who
		}
	case errors.Is(err, syscall.EACCES):
		e.Problem = fmt.Sprintf("no permission to listen on 127.0.0.1:%d", port)
	default:
		e.Problem = fmt.Sprintf("cannot listen on 127.0.0.1:%d: %v", port, err)
	}
	var hint strings.Builder
	hint.WriteString("the local registry is published on this port; stop what uses it, or set HOST_PORT to a free port")
	if free := suggestFreePort(port); free != 0 {
		fmt.Fprintf(&hint, " (e.g. HOST_PORT=%d)", free)
	}
	hint.WriteString("; without HOST_PORT the port is 5000 for CLUSTER_NAME=sriov and 5001 for any other name")
	if clusterName != "" {
		fmt.Fprintf(&hint, " (CLUSTER_NAME is %q)", clusterName)
	}
	e.Hint = hint.String()
	return e
}

// suggestFreePort returns a port near port that can be listened on, or 0.
func suggestFreePort(port int) int {
	for p := port + 1; p <= port+20 && p <= 65535; p++ {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			_ = ln.Close()
			return p
		}
	}
	return 0
}

// describePortUser says which process listens on port, as far as procRoot
// (normally /proc) shows it cheaply: the listening socket's inode from
// net/tcp and net/tcp6, then the process holding that inode. Processes of
// other users are only visible to root; then it says less or nothing.
func describePortUser(procRoot string, port int) string {
	inodes := map[string]bool{}
	for _, f := range []string{"net/tcp", "net/tcp6"} {
		for _, ino := range listeningInodes(filepath.Join(procRoot, f), port) {
			inodes[ino] = true
		}
	}
	if len(inodes) == 0 {
		return ""
	}
	pid, comm := findSocketOwner(procRoot, inodes)
	switch {
	case pid == "":
		return "a process this user cannot see"
	case comm == "docker-proxy" || comm == "rootlessport" || comm == "conmon" || comm == "pasta" || comm == "slirp4netns":
		return fmt.Sprintf("%s (pid %s): a container publishes it, see `docker ps --filter publish=%d` or `podman ps`", comm, pid, port)
	default:
		return fmt.Sprintf("%s (pid %s)", comm, pid)
	}
}

// listeningInodes parses a /proc/net/tcp{,6} table and returns the inodes of
// the sockets in LISTEN state (0A) on port.
func listeningInodes(table string, port int) []string {
	f, err := os.Open(table)
	if err != nil {
		return nil
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	var out []string
	s := bufio.NewScanner(f)
	s.Scan() // header
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 10 {
			continue
		}
		local, state, inode := fields[1], fields[3], fields[9]
		if state == "0A" && strings.HasSuffix(local, want) && inode != "0" {
			out = append(out, inode)
		}
	}
	return out
}

// findSocketOwner returns the pid and command name of a process that holds
// one of the socket inodes.
func findSocketOwner(procRoot string, inodes map[string]bool) (pid, comm string) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return "", ""
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		fdDir := filepath.Join(procRoot, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(target, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] {
				b, _ := os.ReadFile(filepath.Join(procRoot, e.Name(), "comm"))
				name := strings.TrimSpace(string(b))
				if name == "" {
					name = "a process"
				}
				return e.Name(), name
			}
		}
	}
	return "", ""
}
