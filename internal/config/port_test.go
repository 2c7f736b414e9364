package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestCheckPortFreeOnFreePort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if err := CheckPortFree(port); err != nil {
		t.Fatalf("CheckPortFree(%d) on a free port: %v", port, err)
	}
}

// TestCheckPortFreeNamesTheHolder holds a port in this process and expects the
// message to name HOST_PORT, the port, this process and a free alternative.
func TestCheckPortFreeNamesTheHolder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	err = CheckPortFree(port)
	if err == nil {
		t.Fatalf("CheckPortFree(%d) = nil while this test listens on it", port)
	}
	msg := err.Error()
	for _, want := range []string{
		fmt.Sprintf("HOST_PORT=%q: port %d on 127.0.0.1 is already in use", strconv.Itoa(port), port),
		fmt.Sprintf("(pid %d)", os.Getpid()),
		"set HOST_PORT to a free port (e.g. HOST_PORT=",
		"5000 for CLUSTER_NAME=sriov and 5001 for any other name",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message\n %s\ndoes not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("message is not one line: %q", msg)
	}
	var se *SettingError
	if !errors.As(err, &se) || se.Name != "HOST_PORT" {
		t.Errorf("not a HOST_PORT SettingError: %#v", err)
	}

	c := &Config{ClusterName: "sriov2", RegistryHostPort: port}
	if err := c.CheckRegistryPortFree(); err == nil || !strings.Contains(err.Error(), `(CLUSTER_NAME is "sriov2")`) {
		t.Errorf("CheckRegistryPortFree: %v", err)
	}
}

// TestDescribePortUserFakeProc reads a made-up /proc tree.
func TestDescribePortUserFakeProc(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	// 0x1388 = 5000. Line 0: established socket on 5000 (ignored); line 1: listener.
	write("net/tcp", header+
		"   0: 0100007F:1388 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 111 1 0 20 4 30 10 -1\n"+
		"   1: 0100007F:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n"+
		"   2: 0100007F:1389 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0 100 0 0 10 0\n")
	write("net/tcp6", header)
	write("321/comm", "docker-proxy\n")
	write("77/comm", "sshd\n")
	for pid, inode := range map[string]string{"321": "4242", "77": "999"} {
		fd := filepath.Join(root, pid, "fd")
		if err := os.MkdirAll(fd, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("socket:["+inode+"]", filepath.Join(fd, "3")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/dev/null", filepath.Join(fd, "0")); err != nil {
			t.Fatal(err)
		}
	}

	got := describePortUser(root, 5000)
	if !strings.HasPrefix(got, "docker-proxy (pid 321): a container publishes it") || !strings.Contains(got, "publish=5000") {
		t.Errorf("port 5000: %q", got)
	}
	if got := describePortUser(root, 5001); got != "sshd (pid 77)" {
		t.Errorf("port 5001: %q", got)
	}
	if got := describePortUser(root, 5002); got != "" {
		t.Errorf("port 5002 (nobody): %q", got)
	}
	// A listener whose owner is not visible.
	write("net/tcp6", header+"   0: 00000000000000000000000000000000:138A 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5555 1 0 100 0 0 10 0\n")
	if got := describePortUser(root, 5002); got != "a process this user cannot see" {
		t.Errorf("port 5002 (hidden owner): %q", got)
	}
}
