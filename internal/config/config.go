// Package config reads every setting of a provider once, from the
// environment, into a typed Config, and validates all of them before anything
// on the host changes.
//
// Load only reads the variables it is given through getenv: it runs no command
// and touches no file, so a bad value is reported before any container,
// network or file exists. All problems are reported at once, one line each,
// naming the setting, its value and what would work.
//
// A variable that is unset and one that is set to the empty string are the
// same: both mean "use the default".
package config

import (
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/util/version"
)

// Names of the environment variables read by Load.
const (
	EnvProvider               = "KUBEVIRT_PROVIDER"
	EnvNumNodes               = "KUBEVIRT_NUM_NODES"
	EnvClusterName            = "CLUSTER_NAME"
	EnvNodeImage              = "KIND_NODE_IMAGE"
	EnvKindVersion            = "KIND_VERSION"
	EnvKubectlPath            = "KUBECTL_PATH"
	EnvConfigPath             = "KUBEVIRTCI_CONFIG_PATH"
	EnvCRI                    = "CRI_BIN"
	EnvEtcdInMemory           = "KUBEVIRT_WITH_KIND_ETCD_IN_MEMORY"
	EnvCI                     = "CI"
	EnvRegistryImage          = "REGISTRY_IMAGE"
	EnvHostPort               = "HOST_PORT"
	EnvPFCountPerNode         = "PF_COUNT_PER_NODE"
	EnvPFBlacklist            = "PF_BLACKLIST"
	EnvVFsCount               = "VFS_COUNT"
	EnvSysfsRoot              = "SRIOV_SYSFS_ROOT"
	EnvSRIOVStateDir          = "SRIOV_STATE_DIR"
	EnvMultusImage            = "MULTUS_IMAGE"
	EnvSRIOVCNIImage          = "SRIOV_CNI_IMAGE"
	EnvSRIOVDevicePluginImage = "SRIOV_DEVICE_PLUGIN_IMAGE"
	EnvInjectorImage          = "NETWORK_RESOURCES_INJECTOR_IMAGE"
	EnvIPFamily               = "IPFAMILY"
	EnvUseDRA                 = "KUBEVIRT_USE_DRA"
	EnvSourceImages           = "KUBEVIRTCI_SOURCE_IMAGES"
	EnvSkipComponentWaits     = "SRIOV_SKIP_COMPONENT_WAITS"
	EnvSkipAllocatableWait    = "SRIOV_SKIP_ALLOCATABLE_WAIT"
	EnvClusterWaitTimeout     = "CLUSTER_WAIT_TIMEOUT"
	EnvComponentWaitTimeout   = "COMPONENT_WAIT_TIMEOUT"
	EnvAllocatableWaitTimeout = "SRIOV_ALLOCATABLE_WAIT_TIMEOUT"
	EnvDockerPrefix           = "DOCKER_PREFIX"
	EnvDockerTag              = "DOCKER_TAG"
	EnvSyncSources            = "SYNC_SOURCES"
	EnvSyncManifests          = "SYNC_MANIFESTS"
)

// Defaults.
const (
	DefaultProvider    = "kind-1.22-sriov"
	DefaultNumNodes    = 1
	DefaultClusterName = "sriov"
	// CompiledKindVersion is the version of the kind library compiled into
	// this tool (sigs.k8s.io/kind in go.mod), without a leading "v". It is
	// the default KIND_VERSION. A test keeps it equal to go.mod.
	CompiledKindVersion = "0.33.0"
	// MinKindVersion is the oldest kind release that reads the v1alpha4
	// cluster config rendered by package kindcfg.
	MinKindVersion         = "0.8.0"
	DefaultConfigDirName   = "_ci-configs"
	DefaultEtcdDataDir     = "/tmp/kind-cluster-etcd"
	DefaultRegistryImage   = "quay.io/kubevirtci/library-registry:2.7.1"
	DefaultRegistryPort    = 5000 // for CLUSTER_NAME=sriov
	SecondRegistryPort     = 5001 // for any other CLUSTER_NAME
	DefaultPFCountPerNode  = 1
	DefaultVFsCount        = 6
	MaxVFsCount            = 256
	DefaultSysfsRoot       = "/sys"
	DefaultSRIOVStateDir   = "/var/lib/kubevirtci/sriov"
	DefaultClusterWait     = 5 * time.Minute
	DefaultComponentWait   = 5 * time.Minute
	DefaultAllocatableWait = 8 * time.Minute
	DefaultDockerPrefix    = "kubevirt"
	DefaultDockerTag       = "devel"
)

// Defaults are the defaults of the settings that differ between providers:
// the images a provider runs when the user names none.
type Defaults struct {
	NodeImage                                          string // KIND_NODE_IMAGE
	MultusImage, SRIOVCNIImage, SRIOVDevicePluginImage string // MULTUS_IMAGE, SRIOV_CNI_IMAGE, SRIOV_DEVICE_PLUGIN_IMAGE
	// InjectorImage is network-resources-injector's
	// (NETWORK_RESOURCES_INJECTOR_IMAGE); "" for a provider that deploys
	// none, which then refuses the setting.
	InjectorImage string
	// RegistryImage is the local registry's (REGISTRY_IMAGE); ""
	// means DefaultRegistryImage.
	RegistryImage string
}

// IP families of the cluster network (IPFAMILY), as kind names them.
const (
	IPv4      = "ipv4"
	IPv6      = "ipv6"
	DualStack = "dual"
)

// Config is every setting of a provider, read once and validated.
type Config struct {
	Provider         string // KUBEVIRT_PROVIDER, default "kind-1.22-sriov"; a safe folder name (known providers are checked by the provider registry)
	RepoRoot         string // passed in by the caller (absolute)
	NumNodes         int    // KUBEVIRT_NUM_NODES, default 1 (control plane + N-1 workers); see RequireNodes
	ClusterName      string // CLUSTER_NAME, default "sriov"
	NodeImage        string // KIND_NODE_IMAGE, used as given
	SourceImages     bool   // KUBEVIRTCI_SOURCE_IMAGES: the images built from source are the defaults
	KindVersion      string // KIND_VERSION, default CompiledKindVersion, without a leading "v"
	KubectlPath      string // KUBECTL_PATH, "" = probe /usr/bin/kubectl then /bin/kubectl in the node
	ConfigPath       string // KUBEVIRTCI_CONFIG_PATH, default <RepoRoot>/_ci-configs, absolute
	CRI              string // CRI_BIN: "" = auto-detect later; else docker or podman (or a path to one)
	EtcdInMemory     bool   // KUBEVIRT_WITH_KIND_ETCD_IN_MEMORY, default true
	EtcdDataDir      string // DefaultEtcdDataDir
	CI               bool   // CI
	RegistryImage    string // REGISTRY_IMAGE
	RegistryHostPort int    // HOST_PORT, else 5000 for CLUSTER_NAME=sriov and 5001 otherwise
	IPFamily         string // IPFAMILY: ipv4 (default), ipv6 or dual
	// RegistryMirrors (REGISTRY_MIRRORS): the nodes pull each upstream
	// host's images from its mirrors first, then from the host itself.
	RegistryMirrors []Mirror
	// RegistryProxy (REGISTRY_PROXY) is the host:port of a
	// docker-registry-proxy the nodes' containerd pulls through; with
	// CI=true it defaults to kubevirtci CI's. "" for none.
	RegistryProxy string
	// SR-IOV
	PFCountPerNode int      // PF_COUNT_PER_NODE, default 1
	PFBlacklist    []string // PF_BLACKLIST, exact interface names
	VFsCount       int      // VFS_COUNT, default 6, 1..256
	SysfsRoot      string   // SRIOV_SYSFS_ROOT, default /sys
	SRIOVStateDir  string   // SRIOV_STATE_DIR, default /var/lib/kubevirtci/sriov
	// components
	MultusImage, SRIOVCNIImage, SRIOVDevicePluginImage string        // MULTUS_IMAGE, SRIOV_CNI_IMAGE, SRIOV_DEVICE_PLUGIN_IMAGE
	InjectorImage                                      string        // NETWORK_RESOURCES_INJECTOR_IMAGE; "" when the provider deploys no injector
	SkipComponentWaits                                 bool          // SRIOV_SKIP_COMPONENT_WAITS
	SkipAllocatableWait                                bool          // SRIOV_SKIP_ALLOCATABLE_WAIT (simulated PFs: no VF can be allocatable)
	ClusterWaitTimeout                                 time.Duration // CLUSTER_WAIT_TIMEOUT (nodes, DNS, kube-system pods)
	ComponentWaitTimeout                               time.Duration // COMPONENT_WAIT_TIMEOUT (DaemonSets, pods)
	AllocatableWaitTimeout                             time.Duration // SRIOV_ALLOCATABLE_WAIT_TIMEOUT
	// sync
	DockerPrefix  string   // DOCKER_PREFIX, default "kubevirt"
	DockerTag     string   // DOCKER_TAG, default "devel"
	SyncSources   []string // SYNC_SOURCES: OCI layout dirs or image tarballs, absolute
	SyncManifests []string // SYNC_MANIFESTS: manifest files or folders, absolute

	numNodesSet      bool // KUBEVIRT_NUM_NODES was given (for messages)
	registryProxySet bool // REGISTRY_PROXY was given (for messages)
	hostPortSet      bool // HOST_PORT was given (for messages)
}

// Load reads every setting through getenv (normally os.Getenv) and validates
// it. repoRoot is the absolute path of the repository the tool runs for; the
// default KUBEVIRTCI_CONFIG_PATH and relative paths in settings are resolved
// against it. defaults gives the defaults of the provider that
// KUBEVIRT_PROVIDER names (providers.Defaults): its upstream images, or with
// KUBEVIRTCI_SOURCE_IMAGES=true the images `make images` builds from source;
// its error (an unknown provider) is reported as a problem of
// KUBEVIRT_PROVIDER. On any problem it
// returns an Errors with all of them.
func Load(getenv func(string) string, repoRoot string, defaults func(provider string, fromSource bool) (Defaults, error)) (*Config, error) {
	l := &loader{getenv: getenv}
	c := &Config{}

	if repoRoot == "" || !filepath.IsAbs(repoRoot) {
		l.fail("repository root", repoRoot, false, "not an absolute path", "run the tool from the repository (the caller passes its absolute path)")
	} else {
		c.RepoRoot = filepath.Clean(repoRoot)
	}

	c.Provider = l.provider()
	var d Defaults
	c.SourceImages = l.boolean(EnvSourceImages, false)
	if c.Provider != "" {
		var err error
		if d, err = defaults(c.Provider, c.SourceImages); err != nil {
			_, raw := l.get(EnvProvider)
			l.fail(EnvProvider, raw, raw == "", err.Error(), "unset it for the default, "+DefaultProvider+", or pick a known one")
		}
	}
	c.NumNodes, c.numNodesSet = l.numNodes()
	c.ClusterName = l.clusterName()
	c.NodeImage = l.image(EnvNodeImage, d.NodeImage)
	c.KindVersion = l.kindVersion()
	c.KubectlPath = l.kubectlPath()
	c.ConfigPath = l.dir(EnvConfigPath, "", c.RepoRoot, "an absolute path, or one relative to the repository, e.g. "+DefaultConfigDirName)
	if c.ConfigPath == "" && c.RepoRoot != "" {
		c.ConfigPath = DefaultConfigPath(c.RepoRoot, c.ClusterName)
	}
	c.CRI = l.cri()
	c.EtcdInMemory = l.boolean(EnvEtcdInMemory, true)
	c.EtcdDataDir = DefaultEtcdDataDir
	c.CI = l.boolean(EnvCI, false)
	if d.RegistryImage == "" {
		d.RegistryImage = DefaultRegistryImage
	}
	c.RegistryImage = l.image(EnvRegistryImage, d.RegistryImage)
	c.RegistryHostPort, c.hostPortSet = l.hostPort(c.ClusterName)
	c.IPFamily = l.ipFamily()
	c.RegistryMirrors = l.registryMirrors()
	c.RegistryProxy = l.registryProxy(c.CI)
	if v, _ := l.get(EnvRegistryProxy); v != "" {
		c.registryProxySet = true
	}
	l.unsupported(EnvUseDRA, c.Provider, "the SR-IOV DRA driver is not supported yet: the provider deploys the SR-IOV network device plugin", "unset it, or set it to false")

	c.PFCountPerNode = l.integer(EnvPFCountPerNode, DefaultPFCountPerNode, 1, 64, "e.g. 1 (PFs moved into each worker node)")
	c.PFBlacklist = l.pfBlacklist()
	c.VFsCount = l.integer(EnvVFsCount, DefaultVFsCount, 1, MaxVFsCount, "e.g. 6 (VFs created on each PF)")
	c.SysfsRoot = l.absDir(EnvSysfsRoot, DefaultSysfsRoot)
	c.SRIOVStateDir = l.absDir(EnvSRIOVStateDir, DefaultSRIOVStateDir)

	c.MultusImage = l.image(EnvMultusImage, d.MultusImage)
	c.SRIOVCNIImage = l.image(EnvSRIOVCNIImage, d.SRIOVCNIImage)
	c.SRIOVDevicePluginImage = l.image(EnvSRIOVDevicePluginImage, d.SRIOVDevicePluginImage)
	c.InjectorImage = l.injectorImage(c.Provider, d.InjectorImage)
	c.SkipComponentWaits = l.boolean(EnvSkipComponentWaits, false)
	c.SkipAllocatableWait = l.boolean(EnvSkipAllocatableWait, false)
	c.ClusterWaitTimeout = l.duration(EnvClusterWaitTimeout, DefaultClusterWait)
	c.ComponentWaitTimeout = l.duration(EnvComponentWaitTimeout, DefaultComponentWait)
	c.AllocatableWaitTimeout = l.duration(EnvAllocatableWaitTimeout, DefaultAllocatableWait)

	c.DockerPrefix = l.dockerPrefix()
	c.DockerTag = l.dockerTag()
	c.SyncSources = l.pathList(EnvSyncSources, c.RepoRoot)
	c.SyncManifests = l.pathList(EnvSyncManifests, c.RepoRoot)

	if len(l.errs) > 0 {
		return nil, l.errs
	}
	return c, nil
}

// DefaultConfigPath is where a cluster's files go when KUBEVIRTCI_CONFIG_PATH
// is unset: <repo>/_ci-configs for the default cluster (where KubeVirt's
// scripts look), <repo>/_ci-configs/<CLUSTER_NAME> for any other, so that two
// clusters run from one checkout never share a file. cluster-up/kubectl.sh
// follows the same rule.
func DefaultConfigPath(repoRoot, clusterName string) string {
	if clusterName == DefaultClusterName || clusterName == "" {
		return filepath.Join(repoRoot, DefaultConfigDirName)
	}
	return filepath.Join(repoRoot, DefaultConfigDirName, clusterName)
}

// StateDir is the folder of this provider's files: <ConfigPath>/<Provider>.
func (c *Config) StateDir() string { return filepath.Join(c.ConfigPath, c.Provider) }

// KubeconfigPath is StateDir()/.kubeconfig.
func (c *Config) KubeconfigPath() string { return filepath.Join(c.StateDir(), ".kubeconfig") }

// KubectlHostPath is StateDir()/.kubectl, the kubectl copied out of the node.
func (c *Config) KubectlHostPath() string { return filepath.Join(c.StateDir(), ".kubectl") }

// ConfigProviderPath is StateDir()/config-provider-<Provider>.sh.
func (c *Config) ConfigProviderPath() string {
	return filepath.Join(c.StateDir(), "config-provider-"+c.Provider+".sh")
}

// ControlPlaneNode is the name of the control-plane node container (and node).
func (c *Config) ControlPlaneNode() string { return c.ClusterName + "-control-plane" }

// WorkerNodes are the names kind gives the NumNodes-1 workers:
// <name>-worker, <name>-worker2, <name>-worker3, ...
func (c *Config) WorkerNodes() []string {
	var out []string
	for i := 1; i < c.NumNodes; i++ {
		out = append(out, workerName(c.ClusterName, i))
	}
	return out
}

func workerName(cluster string, i int) string {
	if i == 1 {
		return cluster + "-worker"
	}
	return cluster + "-worker" + strconv.Itoa(i)
}

// Nodes is the control-plane node followed by the workers.
func (c *Config) Nodes() []string { return append([]string{c.ControlPlaneNode()}, c.WorkerNodes()...) }

// RegistryContainer is the name of the local registry container.
func (c *Config) RegistryContainer() string { return c.ClusterName + "-registry" }

// RegistryHostAddress is how the host reaches the local registry:
// localhost:<RegistryHostPort>.
func (c *Config) RegistryHostAddress() string {
	return "localhost:" + strconv.Itoa(c.RegistryHostPort)
}

// CRIName is "docker" or "podman" when CRI_BIN was given, else "".
func (c *Config) CRIName() string {
	if c.CRI == "" {
		return ""
	}
	return filepath.Base(c.CRI)
}

// KindVersionAtLeast reports whether KindVersion is v or newer. v is a
// version such as "0.32.0"; it panics on a malformed v (a programming error).
func (c *Config) KindVersionAtLeast(v string) bool {
	have, err := version.ParseSemantic(c.KindVersion)
	if err != nil {
		return false
	}
	return have.AtLeast(version.MustParseSemantic(v))
}

// RegistryProxyDefaulted reports whether RegistryProxy is CI=true's
// default rather than REGISTRY_PROXY's value.
func (c *Config) RegistryProxyDefaulted() bool { return !c.registryProxySet }

// RequireNodes returns an error naming KUBEVIRT_NUM_NODES when the cluster has
// fewer than min nodes (the control plane counts as one). why says what needs
// them, e.g. "SR-IOV PFs are moved into worker nodes".
func (c *Config) RequireNodes(min int, why string) error {
	if c.NumNodes >= min {
		return nil
	}
	problem := fmt.Sprintf("provider %s needs at least %d nodes (1 control plane + %d worker(s))", c.Provider, min, min-1)
	if why != "" {
		problem += ": " + why
	}
	return &SettingError{
		Name:      EnvNumNodes,
		Value:     strconv.Itoa(c.NumNodes),
		Defaulted: !c.numNodesSet,
		Problem:   problem,
		Hint:      fmt.Sprintf("set %s=%d or more, e.g. %s=%d", EnvNumNodes, min, EnvNumNodes, max(min, 3)),
	}
}

// isAbsNodePath reports whether p is an absolute path inside a Linux node.
func isAbsNodePath(p string) bool { return path.IsAbs(p) }
