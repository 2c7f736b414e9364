package regproxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// setupScript is written the way docker-registry-proxy writes its
// /setup/systemd answer (echo lines into a drop-in for docker.service),
// under a root folder so that the test can run it.
const setupScript = `set -e
mkdir -p "$ROOT/etc/systemd/system/docker.service.d"
echo "[Service]" > "$ROOT/etc/systemd/system/docker.service.d/http-proxy.conf"
echo "Environment=\"HTTPS_PROXY=http://proxy:3128/\"" >> "$ROOT/etc/systemd/system/docker.service.d/http-proxy.conf"
echo "Environment=\"HTTP_PROXY=http://proxy:3128/\"" >> "$ROOT/etc/systemd/system/docker.service.d/http-proxy.conf"
echo "restart docker.service" > "$ROOT/restarted"
`

func TestFetch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case SetupPath:
			w.Write([]byte(setupScript))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	got, err := Fetch(context.Background(), host)
	if err != nil || string(got) != setupScript {
		t.Fatalf("Fetch: %q, %v", got, err)
	}

	// Not a docker-registry-proxy: something else answers on the port.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }))
	defer other.Close()
	if _, err := Fetch(context.Background(), strings.TrimPrefix(other.URL, "http://")); err == nil || !strings.Contains(err.Error(), "is it a docker-registry-proxy?") {
		t.Errorf("Fetch from a server that is no proxy: %v", err)
	}

	// Nothing listens: refused at once, naming the URL.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	start := time.Now()
	_, err = Fetch(context.Background(), closed)
	if err == nil || !strings.Contains(err.Error(), `Get "http://`+closed+`/setup/systemd"`) || time.Since(start) > 5*time.Second {
		t.Errorf("Fetch from a closed port: %v after %s", err, time.Since(start))
	}
}

// The adapted script, run by bash, writes a drop-in for containerd whose
// Environment lines carry NO_PROXY, and restarts containerd.
func TestAdaptRuns(t *testing.T) {
	root := t.TempDir()
	noProxy := NoProxy("sriov-registry", "mirror", "sriov-registry")
	if want := "127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,localhost,sriov-registry,mirror"; noProxy != want {
		t.Fatalf("NoProxy: %s, want %s", noProxy, want)
	}
	script := Adapt([]byte(setupScript), noProxy)
	cmd := exec.Command("bash", "-s")
	cmd.Env = append(os.Environ(), "ROOT="+root)
	cmd.Stdin = strings.NewReader(string(script))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bash: %v: %s\n%s", err, out, script)
	}
	dropIn, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/containerd.service.d/http-proxy.conf"))
	if err != nil {
		t.Fatal(err)
	}
	want := "[Service]\n" +
		`Environment="HTTPS_PROXY=http://proxy:3128/" NO_PROXY=` + noProxy + "\n" +
		`Environment="HTTP_PROXY=http://proxy:3128/" NO_PROXY=` + noProxy + "\n"
	if string(dropIn) != want {
		t.Errorf("drop-in:\n%s\nwant:\n%s", dropIn, want)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "restarted")); string(b) != "restart containerd.service\n" {
		t.Errorf("restarted: %q", b)
	}
}

// A here document keeps the quotes: the NO_PROXY word is quoted as
// systemd reads it.
func TestAdaptHereDocument(t *testing.T) {
	in := "cat <<EOD > /etc/systemd/system/docker.service.d/http-proxy.conf\n[Service]\nEnvironment=\"HTTPS_PROXY=http://p:3128/\"  \nEOD\n"
	got := string(Adapt([]byte(in), "10.0.0.0/8"))
	want := "cat <<EOD > /etc/systemd/system/containerd.service.d/http-proxy.conf\n[Service]\nEnvironment=\"HTTPS_PROXY=http://p:3128/\" \"NO_PROXY=10.0.0.0/8\"\nEOD\n"
	if got != want {
		t.Errorf("Adapt:\n%s\nwant:\n%s", got, want)
	}
}
