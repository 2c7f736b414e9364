package imagesync

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Prefix is DOCKER_PREFIX split into an optional registry host and a
// repository path: "kubevirt" is {"", "kubevirt"}, "quay.io/kubevirt" is
// {"quay.io", "kubevirt"}, "localhost:5000/kubevirt" is {"localhost:5000", "kubevirt"}.
//
// Images are pushed to <registry>/<Path>/<name>:<tag>; Host only says where
// the images live in the local engine.
type Prefix struct {
	Host string
	Path string
}

// ParsePrefix splits and checks a DOCKER_PREFIX value.
func ParsePrefix(s string) (Prefix, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/")
	if s == "" {
		return Prefix{}, fmt.Errorf("DOCKER_PREFIX is empty: set it to the repository prefix your images are built under, e.g. kubevirt")
	}
	host, path := splitHost(s)
	if host == "" && (strings.ContainsAny(path, ".:") || path == "localhost") {
		host, path = path, ""
	}
	if path == "" {
		return Prefix{}, fmt.Errorf("DOCKER_PREFIX=%q names only a registry host: add the repository path, e.g. %s/kubevirt", s, host)
	}
	if _, err := name.NewRepository("localhost/" + path + "/x"); err != nil {
		return Prefix{}, fmt.Errorf("DOCKER_PREFIX=%q is not a repository prefix (lower-case path components separated by /, no tag), e.g. kubevirt or quay.io/kubevirt: %v", s, err)
	}
	return Prefix{Host: host, Path: path}, nil
}

func (p Prefix) String() string {
	if p.Host == "" {
		return p.Path
	}
	return p.Host + "/" + p.Path
}

// splitHost splits a repository into the registry host and the path, the way
// docker does: the first component is a host when it contains "." or ":" or
// is "localhost".
func splitHost(repo string) (host, path string) {
	first, rest, ok := strings.Cut(repo, "/")
	if !ok {
		return "", repo
	}
	if strings.ContainsAny(first, ".:") || first == "localhost" {
		return first, rest
	}
	return "", repo
}

// impliedHost reports whether an engine lists an image built as
// "<prefix>/<name>" under host h: docker shows no host (Docker Hub implied),
// podman shows "localhost/" for local builds and "docker.io/" for short names.
func impliedHost(h string) bool {
	switch strings.ToLower(h) {
	case "", "docker.io", "index.docker.io", "localhost":
		return true
	}
	return false
}

// match returns the name of repo under the prefix ("virt-api" for
// "kubevirt/virt-api"), if repo is <prefix>/<name>. extraHosts are hosts
// accepted besides the prefix's own (the registries the images are pushed to,
// when matching references in manifests).
func (p Prefix) match(repo string, extraHosts ...string) (string, bool) {
	host, path := splitHost(repo)
	hostOK := false
	if p.Host == "" {
		hostOK = impliedHost(host)
	} else {
		hostOK = strings.EqualFold(host, p.Host)
	}
	for _, h := range extraHosts {
		if strings.EqualFold(host, h) {
			hostOK = true
		}
	}
	if !hostOK {
		return "", false
	}
	rest, ok := strings.CutPrefix(path, p.Path+"/")
	if !ok || rest == "" {
		return "", false
	}
	return rest, true
}

// splitRef splits an image reference as written in a manifest or listed by
// an engine into repository, tag and digest; either of the last two may be "".
func splitRef(ref string) (repo, tag, digest string) {
	repo = ref
	if i := strings.Index(repo, "@"); i >= 0 {
		repo, digest = repo[:i], repo[i+1:]
	}
	slash := strings.LastIndex(repo, "/")
	if i := strings.LastIndex(repo, ":"); i > slash {
		repo, tag = repo[:i], repo[i+1:]
	}
	return repo, tag, digest
}

// CheckLoopback refuses a registry address that is not on this machine: the
// cluster registry is reached over plain HTTP, which is only acceptable on
// the loopback interface.
func CheckLoopback(hostport string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("registry address %q is not host:port, e.g. localhost:5000: %v", hostport, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("registry address %q: port %q is not a number from 1 to 65535", hostport, port)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("registry address %q is not a loopback address: images are pushed over plain HTTP, "+
		"which is only done to localhost, 127.0.0.0/8 or [::1] (the cluster registry is published on localhost:<HOST_PORT>)", hostport)
}

// registryHosts are the host names under which the host-side registry can
// appear in a manifest: the given localhost:<port> and its 127.0.0.1 twin.
func registryHosts(hostport string) []string {
	out := []string{hostport}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return out
	}
	for _, h := range []string{"localhost", "127.0.0.1"} {
		if !strings.EqualFold(h, host) {
			out = append(out, net.JoinHostPort(h, port))
		}
	}
	return out
}
