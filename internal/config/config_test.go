package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const repo = "/src/kubevirtci"

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// testDefaults stands in for the provider registry (providers.Defaults).
func testDefaults(provider string, _ bool) (Defaults, error) {
	switch provider {
	case "kind-1.22-sriov":
		return Defaults{
			NodeImage:              "quay.io/kubevirtci/kindest_node:v1.22.2@sha256:f638a08c1f68fe2a99e724ace6df233a546eaf6713019a0b310130a4f91ebe7f",
			MultusImage:            "ghcr.io/k8snetworkplumbingwg/multus-cni:v3.8",
			SRIOVCNIImage:          "ghcr.io/k8snetworkplumbingwg/sriov-cni:v2.7.0",
			SRIOVDevicePluginImage: "ghcr.io/k8snetworkplumbingwg/sriov-network-device-plugin:v3.4.0",
		}, nil
	case "kind-sriov":
		return Defaults{
			NodeImage:              "kindest/node:v1.36.1",
			MultusImage:            "ghcr.io/k8snetworkplumbingwg/multus-cni:v3.8",
			SRIOVCNIImage:          "ghcr.io/k8snetworkplumbingwg/sriov-cni:v2.9.0",
			SRIOVDevicePluginImage: "ghcr.io/k8snetworkplumbingwg/sriov-network-device-plugin:v3.9.0",
			InjectorImage:          "ghcr.io/k8snetworkplumbingwg/network-resources-injector:v1.9.0",
		}, nil
	}
	return Defaults{}, errors.New("unknown provider; known providers: kind-1.22-sriov, kind-sriov")
}

func mustLoad(t *testing.T, getenv func(string) string) *Config {
	t.Helper()
	c, err := Load(getenv, repo, testDefaults)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	c := mustLoad(t, env())
	want := &Config{
		Provider:               "kind-1.22-sriov",
		RepoRoot:               repo,
		NumNodes:               1,
		ClusterName:            "sriov",
		NodeImage:              "quay.io/kubevirtci/kindest_node:v1.22.2@sha256:f638a08c1f68fe2a99e724ace6df233a546eaf6713019a0b310130a4f91ebe7f",
		KindVersion:            "0.33.0",
		KubectlPath:            "",
		ConfigPath:             "/src/kubevirtci/_ci-configs",
		CRI:                    "",
		EtcdInMemory:           true,
		EtcdDataDir:            "/tmp/kind-cluster-etcd",
		CI:                     false,
		RegistryImage:          "quay.io/kubevirtci/library-registry:2.7.1",
		RegistryHostPort:       5000,
		IPFamily:               "ipv4",
		PFCountPerNode:         1,
		VFsCount:               6,
		SysfsRoot:              "/sys",
		SRIOVStateDir:          "/var/lib/kubevirtci/sriov",
		MultusImage:            "ghcr.io/k8snetworkplumbingwg/multus-cni:v3.8",
		SRIOVCNIImage:          "ghcr.io/k8snetworkplumbingwg/sriov-cni:v2.7.0",
		SRIOVDevicePluginImage: "ghcr.io/k8snetworkplumbingwg/sriov-network-device-plugin:v3.4.0",
		ClusterWaitTimeout:     5 * time.Minute,
		ComponentWaitTimeout:   5 * time.Minute,
		AllocatableWaitTimeout: 8 * time.Minute,
		DockerPrefix:           "kubevirt",
		DockerTag:              "devel",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if got := c.StateDir(); got != "/src/kubevirtci/_ci-configs/kind-1.22-sriov" {
		t.Errorf("StateDir = %q", got)
	}
	if got := c.KubeconfigPath(); got != "/src/kubevirtci/_ci-configs/kind-1.22-sriov/.kubeconfig" {
		t.Errorf("KubeconfigPath = %q", got)
	}
	if got := c.KubectlHostPath(); got != "/src/kubevirtci/_ci-configs/kind-1.22-sriov/.kubectl" {
		t.Errorf("KubectlHostPath = %q", got)
	}
	if got := c.ConfigProviderPath(); got != "/src/kubevirtci/_ci-configs/kind-1.22-sriov/config-provider-kind-1.22-sriov.sh" {
		t.Errorf("ConfigProviderPath = %q", got)
	}
	if got := c.ControlPlaneNode(); got != "sriov-control-plane" {
		t.Errorf("ControlPlaneNode = %q", got)
	}
	if got := c.WorkerNodes(); got != nil {
		t.Errorf("WorkerNodes with 1 node = %q, want none", got)
	}
	if got := c.RegistryContainer(); got != "sriov-registry" {
		t.Errorf("RegistryContainer = %q", got)
	}
	if got := c.RegistryHostAddress(); got != "localhost:5000" {
		t.Errorf("RegistryHostAddress = %q", got)
	}
}

func TestGoodValues(t *testing.T) {
	c := mustLoad(t, env(
		"KUBEVIRT_PROVIDER", "kind-1.22-sriov",
		"KUBEVIRT_NUM_NODES", " 3 ",
		"CLUSTER_NAME", "sriov2",
		"KIND_NODE_IMAGE", "kindest/node:v1.19.1@sha256:98cf5288864662e37115e362b23e4369c8c4a408f99cbc06e58ac30ddc721600",
		"KIND_VERSION", "v0.11.1",
		"KUBECTL_PATH", "/usr/bin/kubectl",
		"KUBEVIRTCI_CONFIG_PATH", "other/configs/",
		"CRI_BIN", "/usr/local/bin/podman",
		"KUBEVIRT_WITH_KIND_ETCD_IN_MEMORY", "No",
		"CI", "1",
		"REGISTRY_IMAGE", "localhost:5000/registry:2",
		"PF_COUNT_PER_NODE", "2",
		"PF_BLACKLIST", "ens1f0, ens1f10 ,eth0\tens1f0",
		"VFS_COUNT", "256",
		"SRIOV_SYSFS_ROOT", "/tmp/fakesys/",
		"SRIOV_STATE_DIR", "/run/sriov",
		"MULTUS_IMAGE", "ghcr.io/k8snetworkplumbingwg/multus-cni:v4.0.2",
		"SRIOV_SKIP_COMPONENT_WAITS", "YES",
		"CLUSTER_WAIT_TIMEOUT", "90s",
		"COMPONENT_WAIT_TIMEOUT", "300",
		"SRIOV_ALLOCATABLE_WAIT_TIMEOUT", "1h30m",
		"DOCKER_PREFIX", "kubevirt/dev",
		"DOCKER_TAG", "v1.0.0-rc.1",
		"SYNC_SOURCES", "_out/images.tar, /abs/oci-dir",
		"SYNC_MANIFESTS", "_out/manifests",
	))
	checks := []struct {
		name      string
		got, want any
	}{
		{"NumNodes", c.NumNodes, 3},
		{"ClusterName", c.ClusterName, "sriov2"},
		{"KindVersion", c.KindVersion, "0.11.1"},
		{"KubectlPath", c.KubectlPath, "/usr/bin/kubectl"},
		{"ConfigPath", c.ConfigPath, "/src/kubevirtci/other/configs"},
		{"CRI", c.CRI, "/usr/local/bin/podman"},
		{"CRIName", c.CRIName(), "podman"},
		{"EtcdInMemory", c.EtcdInMemory, false},
		{"CI", c.CI, true},
		{"RegistryImage", c.RegistryImage, "localhost:5000/registry:2"},
		{"RegistryHostPort", c.RegistryHostPort, 5001},
		{"PFCountPerNode", c.PFCountPerNode, 2},
		{"PFBlacklist", c.PFBlacklist, []string{"ens1f0", "ens1f10", "eth0"}},
		{"VFsCount", c.VFsCount, 256},
		{"SysfsRoot", c.SysfsRoot, "/tmp/fakesys"},
		{"SRIOVStateDir", c.SRIOVStateDir, "/run/sriov"},
		{"MultusImage", c.MultusImage, "ghcr.io/k8snetworkplumbingwg/multus-cni:v4.0.2"},
		{"SkipComponentWaits", c.SkipComponentWaits, true},
		{"ClusterWaitTimeout", c.ClusterWaitTimeout, 90 * time.Second},
		{"ComponentWaitTimeout", c.ComponentWaitTimeout, 300 * time.Second},
		{"AllocatableWaitTimeout", c.AllocatableWaitTimeout, 90 * time.Minute},
		{"DockerPrefix", c.DockerPrefix, "kubevirt/dev"},
		{"DockerTag", c.DockerTag, "v1.0.0-rc.1"},
		{"SyncSources", c.SyncSources, []string{"/src/kubevirtci/_out/images.tar", "/abs/oci-dir"}},
		{"SyncManifests", c.SyncManifests, []string{"/src/kubevirtci/_out/manifests"}},
		{"ControlPlaneNode", c.ControlPlaneNode(), "sriov2-control-plane"},
		{"WorkerNodes", c.WorkerNodes(), []string{"sriov2-worker", "sriov2-worker2"}},
		{"Nodes", c.Nodes(), []string{"sriov2-control-plane", "sriov2-worker", "sriov2-worker2"}},
		{"RegistryContainer", c.RegistryContainer(), "sriov2-registry"},
		{"StateDir", c.StateDir(), "/src/kubevirtci/other/configs/kind-1.22-sriov"},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
}

func TestRegistryPortRule(t *testing.T) {
	for _, tc := range []struct {
		name, hostPort string
		want           int
	}{
		{"", "", 5000},      // default cluster name
		{"sriov", "", 5000}, // exactly the default name
		{"sriov2", "", 5001},
		{"sriovx", "", 5001}, // no prefix match: only "sriov" gets 5000
		{"kind", "", 5001},
		{"sriov", "5002", 5002},
		{"sriov2", "5000", 5000},
	} {
		c := mustLoad(t, env("CLUSTER_NAME", tc.name, "HOST_PORT", tc.hostPort))
		if c.RegistryHostPort != tc.want {
			t.Errorf("CLUSTER_NAME=%q HOST_PORT=%q: port %d, want %d", tc.name, tc.hostPort, c.RegistryHostPort, tc.want)
		}
	}
}

func TestAbsoluteConfigPath(t *testing.T) {
	c := mustLoad(t, env("KUBEVIRTCI_CONFIG_PATH", "/var/tmp/ci-configs/"))
	if c.ConfigPath != "/var/tmp/ci-configs" {
		t.Fatalf("ConfigPath = %q", c.ConfigPath)
	}
}

func TestWorkerNames(t *testing.T) {
	c := mustLoad(t, env("KUBEVIRT_NUM_NODES", "12", "CLUSTER_NAME", "a"))
	w := c.WorkerNodes()
	if len(w) != 11 || w[0] != "a-worker" || w[1] != "a-worker2" || w[10] != "a-worker11" {
		t.Fatalf("WorkerNodes = %q", w)
	}
}

func TestBooleans(t *testing.T) {
	for v, want := range map[string]bool{
		"true": true, "TRUE": true, "True": true, "1": true, "yes": true, "Yes": true,
		"false": false, "FALSE": false, "0": false, "no": false, "NO": false,
	} {
		c := mustLoad(t, env("CI", v, "KUBEVIRT_WITH_KIND_ETCD_IN_MEMORY", v))
		if c.CI != want || c.EtcdInMemory != want {
			t.Errorf("%q: CI=%v EtcdInMemory=%v, want %v", v, c.CI, c.EtcdInMemory, want)
		}
	}
}

func TestDurations(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"90s": 90 * time.Second, "5m": 5 * time.Minute, "1h30m": 90 * time.Minute,
		"300": 300 * time.Second, "1": time.Second, "1500ms": 1500 * time.Millisecond,
	} {
		got, err := ParseDuration(v)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", v, got, err, want)
		}
	}
	for _, v := range []string{"0", "-5", "0s", "-1m", "5 minutes", "5min", "1.5", "abc", "99999999999999999999"} {
		if d, err := ParseDuration(v); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", v, d)
		}
	}
}

func TestBlacklistParsing(t *testing.T) {
	for v, want := range map[string][]string{
		"ens1f0":                     {"ens1f0"},
		"ens1f0,ens1f1":              {"ens1f0", "ens1f1"},
		"ens1f0 ens1f1":              {"ens1f0", "ens1f1"},
		" ens1f0 , , ens1f1,\n eth0": {"ens1f0", "ens1f1", "eth0"},
		"ens1f1,ens1f1":              {"ens1f1"},
		"ens1f10":                    {"ens1f10"}, // exact names: this is not ens1f1
		"enp94s0f0np0":               {"enp94s0f0np0"},
		"abcdefghijklmno":            {"abcdefghijklmno"},        // 15 characters
		"ens1f0,0000:3B:00.1":        {"ens1f0", "0000:3b:00.1"}, // a PCI address, as sysfs spells it
	} {
		c := mustLoad(t, env("PF_BLACKLIST", v))
		if !reflect.DeepEqual(c.PFBlacklist, want) {
			t.Errorf("PF_BLACKLIST=%q: %q, want %q", v, c.PFBlacklist, want)
		}
	}
}

// TestBadInputs: each bad value gives exactly one one-line message that names
// the setting and the value, says what is wrong and what would work.
func TestBadInputs(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want []string // substrings of the single message, the first is its prefix
	}{
		{[]string{"KUBEVIRT_NUM_NODES", "abc"}, []string{`KUBEVIRT_NUM_NODES="abc": not a number`, "set a whole number >= 1, e.g. 3"}},
		{[]string{"KUBEVIRT_NUM_NODES", "0"}, []string{`KUBEVIRT_NUM_NODES="0": must be at least 1`, "e.g. 3"}},
		{[]string{"KUBEVIRT_NUM_NODES", "-2"}, []string{`KUBEVIRT_NUM_NODES="-2": must be at least 1`, "e.g. 3"}},
		{[]string{"KUBEVIRT_NUM_NODES", "2.5"}, []string{`KUBEVIRT_NUM_NODES="2.5": not a number`, "whole number"}},
		{[]string{"KUBEVIRT_NUM_NODES", "99999999999999999999999"}, []string{`KUBEVIRT_NUM_NODES="99999999999999999999999": number too large`, "e.g. 3"}},
		{[]string{"KUBEVIRT_NUM_NODES", "101"}, []string{`KUBEVIRT_NUM_NODES="101": more than 100`, "e.g. 3"}},
		{[]string{"CLUSTER_NAME", "SRIOV"}, []string{`CLUSTER_NAME="SRIOV": not a valid cluster name`, "lowercase", "CLUSTER_NAME=sriov2"}},
		{[]string{"CLUSTER_NAME", "my_cluster"}, []string{`CLUSTER_NAME="my_cluster": not a valid cluster name`, "CLUSTER_NAME=sriov2"}},
		{[]string{"CLUSTER_NAME", "sriov.two"}, []string{`CLUSTER_NAME="sriov.two": not a valid cluster name`, "hostnames"}},
		{[]string{"CLUSTER_NAME", "-sriov"}, []string{`CLUSTER_NAME="-sriov": not a valid cluster name`, "starting and ending"}},
		{[]string{"CLUSTER_NAME", "sriov-"}, []string{`CLUSTER_NAME="sriov-": not a valid cluster name`}},
		{[]string{"CLUSTER_NAME", "sr iov"}, []string{`CLUSTER_NAME="sr iov": not a valid cluster name`}},
		{[]string{"CLUSTER_NAME", strings.Repeat("a", 50)}, []string{`CLUSTER_NAME="` + strings.Repeat("a", 50) + `": too long (50 characters): at most 49`, "63-character hostname limit"}},
		{[]string{"KUBEVIRT_PROVIDER", "../etc"}, []string{`KUBEVIRT_PROVIDER="../etc": not a valid provider folder name`, "kind-1.22-sriov"}},
		{[]string{"KUBEVIRT_PROVIDER", "kind 1.22"}, []string{`KUBEVIRT_PROVIDER="kind 1.22": not a valid provider folder name`}},
		{[]string{"KIND_NODE_IMAGE", "quay.io/kubevirtci/Kindest_node:v1.22.2"}, []string{`KIND_NODE_IMAGE="quay.io/kubevirtci/Kindest_node:v1.22.2": not a valid image reference`, "with a tag or digest, e.g. quay.io/kubevirtci/kindest_node:v1.22.2@sha256:"}},
		{[]string{"KIND_NODE_IMAGE", "quay.io//kindest_node:v1.22.2"}, []string{`KIND_NODE_IMAGE="quay.io//kindest_node:v1.22.2": repository path "/kindest_node" has an invalid component ""`}},
		{[]string{"KIND_NODE_IMAGE", "kindest/node:v1.22.2@sha256:abc"}, []string{`KIND_NODE_IMAGE="kindest/node:v1.22.2@sha256:abc": not a valid image reference`}},
		{[]string{"KIND_NODE_IMAGE", "kindest/node"}, []string{`KIND_NODE_IMAGE="kindest/node": no tag or digest`}},
		{[]string{"KIND_NODE_IMAGE", "kindest/node: v1.22.2"}, []string{`KIND_NODE_IMAGE="kindest/node: v1.22.2": contains whitespace`}},
		{[]string{"REGISTRY_IMAGE", "registry:2:7"}, []string{`REGISTRY_IMAGE="registry:2:7": not a valid image reference`, "e.g. quay.io/kubevirtci/library-registry:2.7.1"}},
		{[]string{"MULTUS_IMAGE", "ghcr.io/k8snetworkplumbingwg/multus-cni"}, []string{`MULTUS_IMAGE="ghcr.io/k8snetworkplumbingwg/multus-cni": no tag or digest`, "e.g. ghcr.io/k8snetworkplumbingwg/multus-cni:v3.8"}},
		{[]string{"SRIOV_CNI_IMAGE", "ghcr.io/x/sriov-cni:"}, []string{`SRIOV_CNI_IMAGE="ghcr.io/x/sriov-cni:": not a valid image reference`}},
		{[]string{"SRIOV_DEVICE_PLUGIN_IMAGE", "ghcr.io/x/dp@sha256:zz"}, []string{`SRIOV_DEVICE_PLUGIN_IMAGE="ghcr.io/x/dp@sha256:zz": not a valid image reference`, "sriov-network-device-plugin:v3.4.0"}},
		{[]string{"KIND_VERSION", "0.11"}, []string{`KIND_VERSION="0.11": not a semantic version`, "X.Y.Z or vX.Y.Z", "e.g. 0.33.0"}},
		{[]string{"KIND_VERSION", "latest"}, []string{`KIND_VERSION="latest": not a semantic version`}},
		{[]string{"KIND_VERSION", "v0.7.0"}, []string{`KIND_VERSION="v0.7.0": too old`, "at least 0.8.0"}},
		{[]string{"KUBECTL_PATH", "kubectl"}, []string{`KUBECTL_PATH="kubectl": not an absolute path`, "KUBECTL_PATH=/usr/bin/kubectl"}},
		{[]string{"KUBECTL_PATH", "/"}, []string{`KUBECTL_PATH="/": not an absolute path of a file`}},
		{[]string{"CRI_BIN", "nerdctl"}, []string{`CRI_BIN="nerdctl": unknown container CLI`, "docker or podman"}},
		{[]string{"CRI_BIN", "/usr/bin/dockerd"}, []string{`CRI_BIN="/usr/bin/dockerd": unknown container CLI`}},
		{[]string{"KUBEVIRT_WITH_KIND_ETCD_IN_MEMORY", "maybe"}, []string{`KUBEVIRT_WITH_KIND_ETCD_IN_MEMORY="maybe": not a boolean`, "true or false", "default true"}},
		{[]string{"CI", "y"}, []string{`CI="y": not a boolean`, "default false"}},
		{[]string{"SRIOV_SKIP_COMPONENT_WAITS", "on"}, []string{`SRIOV_SKIP_COMPONENT_WAITS="on": not a boolean`}},
		{[]string{"HOST_PORT", "http"}, []string{`HOST_PORT="http": not a number`, "e.g. 5002"}},
		{[]string{"HOST_PORT", "0"}, []string{`HOST_PORT="0": not a TCP port (1..65535)`}},
		{[]string{"HOST_PORT", "65536"}, []string{`HOST_PORT="65536": not a TCP port`}},
		{[]string{"PF_COUNT_PER_NODE", "0"}, []string{`PF_COUNT_PER_NODE="0": must be at least 1`, "from 1 to 64"}},
		{[]string{"PF_COUNT_PER_NODE", "one"}, []string{`PF_COUNT_PER_NODE="one": not a number`}},
		{[]string{"VFS_COUNT", "257"}, []string{`VFS_COUNT="257": must be at most 256`, "from 1 to 256, e.g. 6"}},
		{[]string{"VFS_COUNT", "0"}, []string{`VFS_COUNT="0": must be at least 1`}},
		{[]string{"PF_BLACKLIST", "ens1f0,averyveryverylongname"}, []string{`PF_BLACKLIST="ens1f0,averyveryverylongname": "averyveryverylongname" is longer than 15 characters`, `PF_BLACKLIST="ens1f0,0000:3b:00.1"`}},
		{[]string{"PF_BLACKLIST", "net/eth0"}, []string{`PF_BLACKLIST="net/eth0": "net/eth0" contains '/' or ':'`}},
		{[]string{"PF_BLACKLIST", "eth0:1"}, []string{`PF_BLACKLIST="eth0:1": "eth0:1" contains '/' or ':'`}},
		{[]string{"PF_BLACKLIST", ".."}, []string{`PF_BLACKLIST="..": ".." is not an interface name`}},
		{[]string{"PF_BLACKLIST", "*"}, []string{`PF_BLACKLIST="*": "*" is a pattern: entries are matched exactly`}},
		{[]string{"PF_BLACKLIST", "ens1f0, ens*"}, []string{`PF_BLACKLIST="ens1f0, ens*": "ens*" is a pattern`, `PF_BLACKLIST="ens1f0,0000:3b:00.1"`}},
		{[]string{"SRIOV_SYSFS_ROOT", "sys"}, []string{`SRIOV_SYSFS_ROOT="sys": not an absolute path`, "e.g. /sys"}},
		{[]string{"SRIOV_STATE_DIR", "state"}, []string{`SRIOV_STATE_DIR="state": not an absolute path`, "e.g. /var/lib/kubevirtci/sriov"}},
		{[]string{"CLUSTER_WAIT_TIMEOUT", "5 minutes"}, []string{`CLUSTER_WAIT_TIMEOUT="5 minutes": not a duration`, `"90s" or "5m"`, `"300"`}},
		{[]string{"COMPONENT_WAIT_TIMEOUT", "0"}, []string{`COMPONENT_WAIT_TIMEOUT="0": must be positive`, "default 5m0s"}},
		{[]string{"SRIOV_ALLOCATABLE_WAIT_TIMEOUT", "-1m"}, []string{`SRIOV_ALLOCATABLE_WAIT_TIMEOUT="-1m": must be positive`, "default 8m0s"}},
		{[]string{"DOCKER_PREFIX", "KubeVirt"}, []string{`DOCKER_PREFIX="KubeVirt": "KubeVirt" is not a valid repository path component`, "e.g. kubevirt"}},
		{[]string{"DOCKER_PREFIX", "kubevirt/"}, []string{`DOCKER_PREFIX="kubevirt/": "" is not a valid repository path component`}},
		{[]string{"DOCKER_TAG", "-devel"}, []string{`DOCKER_TAG="-devel": not a valid image tag`, "e.g. devel"}},
		{[]string{"DOCKER_TAG", "a:b"}, []string{`DOCKER_TAG="a:b": not a valid image tag`}},
	} {
		t.Run(tc.env[0]+"="+tc.env[1], func(t *testing.T) {
			root := t.TempDir()
			c, err := Load(env(tc.env...), root, testDefaults)
			if err == nil {
				t.Fatalf("Load accepted %s=%q: %+v", tc.env[0], tc.env[1], c)
			}
			if c != nil {
				t.Errorf("Load returned a config along with an error")
			}
			var es Errors
			if !errors.As(err, &es) || len(es) != 1 {
				t.Fatalf("want exactly one problem, got %v", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("message is not one line: %q", msg)
			}
			if !strings.HasPrefix(msg, tc.want[0]) {
				t.Errorf("message\n %s\ndoes not start with\n %s", msg, tc.want[0])
			}
			for _, w := range tc.want[1:] {
				if !strings.Contains(msg, w) {
					t.Errorf("message\n %s\ndoes not contain %q", msg, w)
				}
			}
			if !strings.Contains(msg, "; ") {
				t.Errorf("message has no hint: %q", msg)
			}
			var se *SettingError
			if !errors.As(err, &se) || se.Name != tc.env[0] || se.Value != tc.env[1] {
				t.Errorf("SettingError = %+v, want name %s value %q", se, tc.env[0], tc.env[1])
			}
			// Load touches nothing on the host.
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Errorf("Load wrote into the repository: %v", entries)
			}
		})
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	_, err := Load(env(
		"KUBEVIRT_NUM_NODES", "abc",
		"CLUSTER_NAME", "Bad_Name",
		"CRI_BIN", "lxc",
		"VFS_COUNT", "1000",
		"CI", "sure",
	), repo, testDefaults)
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{"KUBEVIRT_NUM_NODES=", "CLUSTER_NAME=", "CRI_BIN=", "CI=", "VFS_COUNT="}
	if len(lines) != len(want) {
		t.Fatalf("want %d lines, got %d:\n%s", len(want), len(lines), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want it to start with %s", i, lines[i], w)
		}
	}
}

func TestRelativeRepoRoot(t *testing.T) {
	_, err := Load(env(), "relative/dir", testDefaults)
	if err == nil || !strings.Contains(err.Error(), `repository root="relative/dir": not an absolute path`) {
		t.Fatalf("err = %v", err)
	}
}

func TestRequireNodes(t *testing.T) {
	c := mustLoad(t, env())
	err := c.RequireNodes(2, "SR-IOV PFs are moved into worker nodes")
	want := `KUBEVIRT_NUM_NODES="1" (the default): provider kind-1.22-sriov needs at least 2 nodes (1 control plane + 1 worker(s)): SR-IOV PFs are moved into worker nodes; set KUBEVIRT_NUM_NODES=2 or more, e.g. KUBEVIRT_NUM_NODES=3`
	if err == nil || err.Error() != want {
		t.Fatalf("RequireNodes:\n got %v\nwant %s", err, want)
	}
	c = mustLoad(t, env("KUBEVIRT_NUM_NODES", "1"))
	if err := c.RequireNodes(2, ""); err == nil || strings.Contains(err.Error(), "default") {
		t.Fatalf("RequireNodes with the variable set: %v", err)
	}
	c = mustLoad(t, env("KUBEVIRT_NUM_NODES", "2"))
	if err := c.RequireNodes(2, "x"); err != nil {
		t.Fatalf("RequireNodes(2) with 2 nodes: %v", err)
	}
}

func TestKindVersionAtLeast(t *testing.T) {
	c := mustLoad(t, env("KIND_VERSION", "v0.31.0"))
	if c.KindVersionAtLeast("0.32.0") || !c.KindVersionAtLeast("0.31.0") || !c.KindVersionAtLeast("0.11.1") {
		t.Fatal("KindVersionAtLeast is wrong for 0.31.0")
	}
	c = mustLoad(t, env())
	if !c.KindVersionAtLeast("0.32.0") {
		t.Fatal("compiled kind version should be >= 0.32.0")
	}
}

// TestCompiledKindVersionMatchesGoMod keeps CompiledKindVersion equal to the
// kind library actually compiled in.
func TestCompiledKindVersionMatchesGoMod(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "sigs.k8s.io/kind" {
			if f[1] != "v"+CompiledKindVersion {
				t.Fatalf("go.mod has sigs.k8s.io/kind %s, CompiledKindVersion is %s", f[1], CompiledKindVersion)
			}
			return
		}
	}
	t.Fatal("sigs.k8s.io/kind not found in go.mod")
}

func TestSecondClusterFilesApart(t *testing.T) {
	env := map[string]string{"CLUSTER_NAME": "sriov2"}
	c, err := Load(func(k string) string { return env[k] }, "/src/kci", testDefaults)
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir() != "/src/kci/_ci-configs/sriov2/kind-1.22-sriov" {
		t.Fatalf("second cluster's state dir: %s", c.StateDir())
	}
	env["KUBEVIRTCI_CONFIG_PATH"] = "/elsewhere"
	c, _ = Load(func(k string) string { return env[k] }, "/src/kci", testDefaults)
	if c.StateDir() != "/elsewhere/kind-1.22-sriov" {
		t.Fatalf("explicit config path not used: %s", c.StateDir())
	}
}

func TestProviderDefaults(t *testing.T) {
	c := mustLoad(t, env("KUBEVIRT_PROVIDER", "kind-sriov"))
	if c.NodeImage != "kindest/node:v1.36.1" || c.SRIOVCNIImage != "ghcr.io/k8snetworkplumbingwg/sriov-cni:v2.9.0" ||
		c.InjectorImage != "ghcr.io/k8snetworkplumbingwg/network-resources-injector:v1.9.0" {
		t.Errorf("kind-sriov defaults not used: %+v", c)
	}
	c = mustLoad(t, env("KUBEVIRT_PROVIDER", "kind-sriov", "KIND_NODE_IMAGE", "example.com/node:v1", "NETWORK_RESOURCES_INJECTOR_IMAGE", "example.com/nri:v2"))
	if c.NodeImage != "example.com/node:v1" || c.InjectorImage != "example.com/nri:v2" {
		t.Errorf("settings did not win over the provider's defaults: %+v", c)
	}
	if c := mustLoad(t, env()); c.InjectorImage != "" {
		t.Errorf("kind-1.22-sriov has an injector image %q", c.InjectorImage)
	}
}

func TestProviderSpecificSettingsRefused(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want []string
	}{
		{[]string{"KUBEVIRT_PROVIDER", "kind-9.99"}, []string{`KUBEVIRT_PROVIDER="kind-9.99": unknown provider; known providers: kind-1.22-sriov, kind-sriov`}},
		{[]string{"KUBEVIRT_USE_DRA", "true"}, []string{`KUBEVIRT_USE_DRA="true"`, "DRA driver is not supported yet", "unset it"}},
		{[]string{"KUBEVIRT_PROVIDER", "kind-sriov", "KUBEVIRT_USE_DRA", "yes"}, []string{`KUBEVIRT_USE_DRA="yes"`, "provider kind-sriov"}},
		{[]string{"KUBEVIRT_USE_DRA", "maybe"}, []string{`KUBEVIRT_USE_DRA="maybe": not a boolean`}},
		{[]string{"NETWORK_RESOURCES_INJECTOR_IMAGE", "example.com/nri:v1"}, []string{"deploys no network-resources-injector", "KUBEVIRT_PROVIDER=kind-sriov"}},
		{[]string{"IPFAMILY", "ipv5"}, []string{`IPFAMILY="ipv5": not an IP family`, "ipv4 (the default), ipv6 or dual"}},
	} {
		_, err := Load(env(tc.env...), repo, testDefaults)
		if err == nil {
			t.Errorf("%v: accepted", tc.env)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", tc.env, err, w)
			}
		}
	}
	for _, ok := range [][]string{{"KUBEVIRT_USE_DRA", "false"}, {"IPFAMILY", "dual"}, {"IPFAMILY", "IPv6"}} {
		if _, err := Load(env(ok...), repo, testDefaults); err != nil {
			t.Errorf("%v refused: %v", ok, err)
		}
	}
}
