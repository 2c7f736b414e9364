// Package localregistry runs the cluster's local image registry: a container
// named <cluster>-registry on kind's network, published on 127.0.0.1 only,
// which every node reaches as registry:5000.
package localregistry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/cri"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/BurntSushi/toml"
)

// Network is the docker network kind puts its nodes on.
const Network = "kind"

// ContainerPort is the port the registry listens on inside its container,
// and the port nodes use (registry:5000).
const ContainerPort = 5000

// ClusterHost is how nodes and pods name the registry.
const ClusterHost = "registry:5000"

// Engine is what the registry step needs from the container CLI.
type Engine interface {
	Inspect(ctx context.Context, name string) (*cri.Container, error)
	RunDetached(ctx context.Context, s cri.RunSpec) (string, error)
	Remove(ctx context.Context, name string) error
	ImageID(ctx context.Context, ref string) (string, error)
}

// Spec is the registry a cluster wants.
type Spec struct {
	Container string // <cluster>-registry
	Image     string
	HostPort  int
	Cluster   string // recorded as a label, to tell whose registry it is
}

// Label marks containers created by this tool, with the cluster name as value.
const Label = "io.kubevirt.kubevirtci/registry-of"

// Outcome says what Ensure did.
type Outcome string

// Outcomes of Ensure.
const (
	Created  Outcome = "created"
	Reused   Outcome = "reused"
	Replaced Outcome = "replaced"
)

// Drift lists how an existing container differs from the spec; empty means
// it can be reused as is.
func Drift(ct *cri.Container, s Spec, wantImageID string) []string {
	var d []string
	if !ct.Running {
		d = append(d, "not running")
	}
	if wantImageID != "" && ct.ImageID != wantImageID {
		d = append(d, fmt.Sprintf("image %s, want %s", ct.Image, s.Image))
	}
	if _, ok := ct.Networks[Network]; !ok {
		d = append(d, "not on network "+Network)
	}
	want := "127.0.0.1:" + strconv.Itoa(s.HostPort)
	got := ct.Ports[strconv.Itoa(ContainerPort)+"/tcp"]
	if len(got) != 1 || got[0] != want {
		d = append(d, fmt.Sprintf("published on %v, want %s", got, want))
	}
	if ct.RestartPolicy != "always" {
		d = append(d, "restart policy "+strconv.Quote(ct.RestartPolicy)+", want always")
	}
	return d
}

// Ensure makes sure the registry container runs as specified: a correct
// existing one is reused, a drifted one replaced. Only the container with
// exactly the spec's name is ever touched.
func Ensure(ctx context.Context, e Engine, s Spec, portFree func(int) error) (Outcome, error) {
	wantID, err := e.ImageID(ctx, s.Image)
	if err != nil {
		return "", fmt.Errorf("registry image %s is not in the local engine (set REGISTRY_IMAGE to an image you have, or pull/build it first): %w", s.Image, err)
	}
	outcome := Created
	ct, err := e.Inspect(ctx, s.Container)
	switch {
	case err == nil:
		d := Drift(ct, s, wantID)
		if len(d) == 0 {
			return Reused, nil
		}
		if err := e.Remove(ctx, s.Container); err != nil {
			return "", fmt.Errorf("removing drifted registry %s (%v): %w", s.Container, d, err)
		}
		outcome = Replaced
	case errors.Is(err, cri.ErrNotFound):
	default:
		return "", err
	}
	if portFree != nil {
		if err := portFree(s.HostPort); err != nil {
			return "", err
		}
	}
	_, err = e.RunDetached(ctx, cri.RunSpec{
		Name:          s.Container,
		Image:         s.Image,
		Network:       Network,
		Publish:       []string{fmt.Sprintf("127.0.0.1:%d:%d", s.HostPort, ContainerPort)},
		RestartPolicy: "always",
		Labels:        map[string]string{Label: s.Cluster},
	})
	if err != nil {
		return "", err
	}
	return outcome, nil
}

// WaitServing polls the registry's /v2/ endpoint on the host port until it
// answers, or the timeout passes.
func WaitServing(ctx context.Context, hostPort int, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	url := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(hostPort)) + "/v2/"
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return true, nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		return false, nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for the registry on %s: %w", url, ctx.Err())
		}
		return fmt.Errorf("registry did not answer on %s within %s: %v", url, timeout, last)
	}
	return nil
}

// HostingConfigMap returns the data of the KEP-1755 ConfigMap
// kube-public/local-registry-hosting, which tells tools where the cluster's
// local registry is.
func HostingConfigMap(hostPort int) map[string]string {
	return map[string]string{
		"localRegistryHosting.v1": fmt.Sprintf("host: \"localhost:%d\"\nhostFromContainerRuntime: %q\nhostFromClusterNetwork: %q\nhelp: \"https://kind.sigs.k8s.io/docs/user/local-registry/\"\n",
			hostPort, ClusterHost, ClusterHost),
	}
}

// HostsToml is the containerd hosts.toml that makes every node pull
// registry:5000 images over plain HTTP from the registry container. The
// upstream is the registry container's own name, which docker's embedded DNS
// resolves on the kind network; unlike an /etc/hosts entry holding its IP,
// this survives a registry restart that changes the IP, and two clusters'
// registries on the same network never get mixed up.
func HostsToml(registryContainer string) string {
	up := fmt.Sprintf("http://%s:%d", registryContainer, ContainerPort)
	var b strings.Builder
	// Encoding these types cannot fail.
	_ = toml.NewEncoder(&b).Encode(hostsFile{
		Server: up,
		Host:   map[string]hostEntry{up: {Capabilities: []string{"pull", "resolve"}, SkipVerify: true}},
	})
	return b.String()
}

// hostsFile is containerd's hosts.toml (the fields used here).
type hostsFile struct {
	Server string               `toml:"server"`
	Host   map[string]hostEntry `toml:"host"`
}

type hostEntry struct {
	Capabilities []string `toml:"capabilities"`
	SkipVerify   bool     `toml:"skip_verify,omitempty"`
}

// HostsTomlPath is where containerd looks for registry:5000's hosts.toml
// (with config_path = "/etc/containerd/certs.d").
var HostsTomlPath = HostsTomlPathOf(ClusterHost)

// CertsDir is containerd's registry host configuration folder (the
// config_path the node's containerd is given): one folder per registry
// host, named as image names spell the host, holding its hosts.toml.
const CertsDir = "/etc/containerd/certs.d"

// HostsTomlPathOf is the hosts.toml of a registry host (docker.io,
// quay.io, myregistry:5000).
func HostsTomlPathOf(host string) string { return CertsDir + "/" + host + "/hosts.toml" }

// UpstreamServer is the URL containerd pulls a registry host's images
// from when no mirror has them: https://<host>, except docker.io, whose
// registry answers at registry-1.docker.io.
func UpstreamServer(host string) string {
	if host == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + host
}

// MirrorHostsToml is the hosts.toml that makes a node pull upstream's
// images from mirrors (URLs, tried in order) and, when none of them
// answers or has the image, from upstream itself.
func MirrorHostsToml(upstream string, mirrors []string) string {
	var b strings.Builder
	// The mirrors in order: containerd tries the [host] tables in the
	// order of the file, then server. A map would lose the order, so the
	// tables are written one by one.
	_ = toml.NewEncoder(&b).Encode(struct {
		Server string `toml:"server"`
	}{UpstreamServer(upstream)})
	for _, m := range mirrors {
		fmt.Fprintf(&b, "\n[host.%q]\n", m)
		_ = toml.NewEncoder(&b).Encode(hostEntry{Capabilities: []string{"pull", "resolve"}})
	}
	return b.String()
}
