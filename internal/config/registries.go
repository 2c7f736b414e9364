package config

// The settings of where the nodes pull from: REGISTRY_MIRRORS (a mirror
// per upstream registry host) and REGISTRY_PROXY (kubevirtci CI's
// docker-registry-proxy).

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/kubevirt/kubevirtci-go/internal/localregistry"
)

// Names of the registry settings.
const (
	EnvRegistryMirrors = "REGISTRY_MIRRORS"
	EnvRegistryProxy   = "REGISTRY_PROXY"
)

// DefaultCIRegistryProxy is the registry proxy of kubevirtci's CI: with
// CI=true and REGISTRY_PROXY unset, the nodes pull through it.
const DefaultCIRegistryProxy = "docker-mirror-proxy.kubevirt-prow.svc:3128"

// RegistryProxyOff is the REGISTRY_PROXY value that turns the proxy off,
// CI=true or not.
const RegistryProxyOff = "off"

// A Mirror is one entry of REGISTRY_MIRRORS: the nodes pull images of Host
// (a registry host as image names spell it: docker.io, quay.io,
// ghcr.io, registry.k8s.io, myregistry:5000) from URL first.
type Mirror struct {
	Host string
	URL  string // scheme://host[:port], no path
}

// registryHostRE is a registry host as an image name spells it: DNS labels
// separated by dots, or localhost, with an optional port.
var registryHostRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$`)

const mirrorsHint = `list upstream=mirror pairs separated by commas or spaces, each mirror an http:// or https:// URL without a path, e.g. REGISTRY_MIRRORS="docker.io=https://mirror.example.com,ghcr.io=http://10.0.0.5:5000"`

// registryMirrors parses REGISTRY_MIRRORS. A host may have several mirrors,
// tried in the order given.
func (l *loader) registryMirrors() []Mirror {
	v, raw := l.get(EnvRegistryMirrors)
	if v == "" {
		return nil
	}
	var out []Mirror
	seen := map[Mirror]bool{}
	for _, entry := range SplitList(v) {
		m, err := ParseMirror(entry)
		if err != nil {
			l.fail(EnvRegistryMirrors, raw, false, err.Error(), mirrorsHint)
			continue
		}
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out
}

// ParseMirror parses one REGISTRY_MIRRORS entry, upstream=URL.
func ParseMirror(entry string) (Mirror, error) {
	host, u, ok := strings.Cut(entry, "=")
	if !ok || host == "" || u == "" {
		return Mirror{}, fmt.Errorf("%q is not upstream=mirror", entry)
	}
	host = strings.ToLower(host)
	if !registryHostRE.MatchString(host) {
		return Mirror{}, fmt.Errorf("%q is not a registry host (such as docker.io, quay.io or myregistry:5000)", host)
	}
	if host == localregistry.ClusterHost {
		return Mirror{}, fmt.Errorf("%s is the cluster's own registry, which always pulls from the registry container", host)
	}
	if err := checkPort(host); err != nil {
		return Mirror{}, fmt.Errorf("%q: %v", host, err)
	}
	mu, err := url.Parse(u)
	switch {
	case err != nil:
		return Mirror{}, fmt.Errorf("mirror of %s: %q is not a URL", host, u)
	case mu.Scheme != "http" && mu.Scheme != "https":
		return Mirror{}, fmt.Errorf("mirror of %s: %q does not start with http:// or https://", host, u)
	case mu.Host == "" || mu.User != nil || mu.RawQuery != "" || mu.Fragment != "":
		return Mirror{}, fmt.Errorf("mirror of %s: %q is not scheme://host[:port]", host, u)
	case mu.Path != "" && mu.Path != "/":
		return Mirror{}, fmt.Errorf("mirror of %s: %q has a path; mirrors are reached at /v2/ of their host", host, u)
	}
	if err := checkPort(mu.Host); err != nil {
		return Mirror{}, fmt.Errorf("mirror of %s: %q: %v", host, u, err)
	}
	return Mirror{Host: host, URL: mu.Scheme + "://" + strings.ToLower(mu.Host)}, nil
}

// checkPort checks the port of host[:port], when there is one.
func checkPort(hostport string) error {
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil // no port
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not 1 to 65535", port)
	}
	return nil
}

// registryProxy is REGISTRY_PROXY: host:port of a docker-registry-proxy,
// "" for none. With CI=true it defaults to kubevirtci CI's proxy.
func (l *loader) registryProxy(ci bool) string {
	v, raw := l.get(EnvRegistryProxy)
	hint := fmt.Sprintf("set it to the proxy's host[:port] (port 3128 when omitted), e.g. %s=%s, or to %q for none", EnvRegistryProxy, DefaultCIRegistryProxy, RegistryProxyOff)
	switch strings.ToLower(v) {
	case "":
		if ci {
			return DefaultCIRegistryProxy
		}
		return ""
	case RegistryProxyOff, "none", "false":
		return ""
	}
	host := strings.TrimSuffix(strings.TrimPrefix(v, "http://"), "/")
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "3128")
	}
	h, _, _ := net.SplitHostPort(host)
	if net.ParseIP(h) == nil && !registryHostRE.MatchString(strings.ToLower(h)) {
		l.fail(EnvRegistryProxy, raw, false, fmt.Sprintf("%q is not a host name or IP address", h), hint)
		return ""
	}
	if err := checkPort(host); err != nil {
		l.fail(EnvRegistryProxy, raw, false, err.Error(), hint)
		return ""
	}
	return host
}
