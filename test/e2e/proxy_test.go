package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// proxyStandIn stands in for kubevirtci CI's docker-registry-proxy: it
// serves a setup script at /setup/systemd the way docker-registry-proxy
// does (a systemd drop-in for docker.service with HTTPS_PROXY and
// HTTP_PROXY, the proxy's CA fetched from /ca.crt and made trusted, the
// daemon restarted), and its CA. It listens on the gateway of kind's
// network, which the host and the nodes reach. It carries no pull: the
// clusters of the suite pull nothing from outside.
type proxyStandIn struct {
	addr string // host:port
	ca   []byte // PEM
	mu   sync.Mutex
	seen []string // "<remote IP> <path>"
}

func startProxyStandIn(t *testing.T) *proxyStandIn {
	t.Helper()
	if _, err := docker(context.Background(), "network", "inspect", "kind"); err != nil {
		dockerT(t, "network", "create", "kind")
	}
	var gw string
	for _, g := range strings.Fields(dockerT(t, "network", "inspect", "kind", "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}")) {
		if ip := net.ParseIP(g); ip != nil && ip.To4() != nil {
			gw = g
		}
	}
	if gw == "" {
		t.Fatal("kind's network has no IPv4 gateway")
	}
	l, err := net.Listen("tcp", net.JoinHostPort(gw, "0"))
	if err != nil {
		t.Fatal(err)
	}
	p := &proxyStandIn{addr: l.Addr().String(), ca: selfSignedCA(t)}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

func (p *proxyStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	p.mu.Lock()
	p.seen = append(p.seen, host+" "+r.URL.Path)
	p.mu.Unlock()
	switch r.URL.Path {
	case "/setup/systemd":
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, `set -e
if [ ! -d /etc/systemd/system/docker.service.d ]; then
    mkdir -p /etc/systemd/system/docker.service.d
fi
echo "[Service]" > /etc/systemd/system/docker.service.d/http-proxy.conf
echo "Environment=\"HTTPS_PROXY=http://%[1]s/\"" >> /etc/systemd/system/docker.service.d/http-proxy.conf
echo "Environment=\"HTTP_PROXY=http://%[1]s/\"" >> /etc/systemd/system/docker.service.d/http-proxy.conf
curl -fsS http://%[1]s/ca.crt > /usr/share/ca-certificates/docker_registry_proxy.crt
grep -qx docker_registry_proxy.crt /etc/ca-certificates.conf || echo "docker_registry_proxy.crt" >> /etc/ca-certificates.conf
update-ca-certificates --fresh >/dev/null
systemctl daemon-reload
systemctl restart docker.service
echo "Docker configured with HTTPS_PROXY=http://%[1]s/"
`, r.Host)
	case "/ca.crt":
		w.Write(p.ca)
	default:
		http.NotFound(w, r)
	}
}

// requests are the paths asked for, with the asker's address.
func (p *proxyStandIn) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "e2e docker-registry-proxy stand-in CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// checkProxied: every node's containerd runs with the proxy in its
// environment and the private ranges and the cluster's registry in
// NO_PROXY, trusts the proxy's CA, and each node fetched the CA (the
// setup ran in it); the host fetched the script once, at the host check.
func checkProxied(t *testing.T, c *cluster, p *proxyStandIn) {
	t.Helper()
	ca := strings.TrimSpace(string(p.ca))
	for _, n := range c.nodeNames() {
		env := dockerT(t, "exec", n, "sh", "-c", `tr '\0' '\n' < /proc/$(pidof containerd)/environ | grep -i _proxy`)
		for _, want := range []string{
			"HTTPS_PROXY=http://" + p.addr + "/",
			"HTTP_PROXY=http://" + p.addr + "/",
			"NO_PROXY=127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,localhost," + c.registry(),
		} {
			if !strings.Contains(env, want) {
				t.Errorf("%s: containerd's environment lacks %s:\n%s", n, want, env)
			}
		}
		if bundle := dockerT(t, "exec", n, "cat", "/etc/ssl/certs/ca-certificates.crt"); !strings.Contains(bundle, ca) {
			t.Errorf("%s: the proxy's CA is not in the trusted bundle", n)
		}
	}
	var setups, cas int
	for _, r := range p.requests() {
		switch {
		case strings.HasSuffix(r, " /setup/systemd"):
			setups++
		case strings.HasSuffix(r, " /ca.crt"):
			cas++
		}
	}
	if setups != 1 || cas != len(c.nodeNames()) {
		t.Errorf("the stand-in was asked for the script %d times and the CA %d times, want once and once per node (%d): %v", setups, cas, len(c.nodeNames()), p.requests())
	}
}
