// Package regproxy points a kind node's containerd at a
// docker-registry-proxy (https://github.com/rpardini/docker-registry-proxy),
// as kubevirtci's CI does: the proxy serves a setup script at
// /setup/systemd, written for dockerd, which sets HTTP_PROXY and
// HTTPS_PROXY for the daemon, trusts the proxy's CA and restarts the
// daemon. Adapt turns it into one for containerd that leaves the private
// address ranges and the cluster's own registry out of the proxy.
package regproxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// SetupPath is where a docker-registry-proxy serves its setup script.
const SetupPath = "/setup/systemd"

// FetchTimeout bounds Fetch: a proxy that does not answer within it is
// reported as not answering.
const FetchTimeout = 10 * time.Second

// PrivateRanges are never proxied: the nodes, their pods and services,
// and the docker networks of the host all live in them.
var PrivateRanges = []string{"127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}

// URL is the setup script's URL on proxy (host:port).
func URL(proxy string) string { return "http://" + proxy + SetupPath }

// Fetch gets the setup script from proxy (host:port).
func Fetch(ctx context.Context, proxy string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, URL(proxy), nil)
	if err != nil {
		return nil, err
	}
	// The proxy is asked directly, never through the host's own proxy.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return nil, fmt.Errorf("GET %s: no answer within %s", URL(proxy), FetchTimeout)
		}
		return nil, err // a *url.Error: `Get "<url>": <cause>`
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", URL(proxy), err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", URL(proxy), resp.Status)
	}
	if !bytes.Contains(body, []byte("Environment")) {
		return nil, fmt.Errorf("GET %s: the answer sets no Environment= line; is it a docker-registry-proxy?", URL(proxy))
	}
	return body, nil
}

// Adapt makes the proxy's setup script configure containerd instead of
// dockerd, and appends NO_PROXY (noProxy, comma-separated) to every line
// that sets an Environment=, so that containerd reaches those addresses
// and names directly. (Whether the script writes the line with a here
// document or an echo, a quoted word at its end lands in the drop-in: an
// echo takes words after its redirection as arguments too.)
func Adapt(script []byte, noProxy string) []byte {
	lines := strings.Split(string(script), "\n")
	for i, l := range lines {
		l = strings.ReplaceAll(l, "docker.service", "containerd.service")
		if strings.Contains(l, "Environment") {
			l = strings.TrimRight(l, " \t") + ` "NO_PROXY=` + noProxy + `"`
		}
		lines[i] = l
	}
	return []byte(strings.Join(lines, "\n"))
}

// NoProxy is the NO_PROXY value for a cluster's nodes: the private ranges,
// localhost, and names (the cluster's registry, its mirrors) that
// containerd must reach directly.
func NoProxy(names ...string) string {
	out := append([]string{}, PrivateRanges...)
	out = append(out, "localhost")
	seen := map[string]bool{}
	for _, n := range names {
		if n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return strings.Join(out, ",")
}
