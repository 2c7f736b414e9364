package config

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/util/version"
)

// loader collects every problem instead of stopping at the first one.
type loader struct {
	getenv func(string) string
	errs   Errors
}

func (l *loader) fail(setting, value string, defaulted bool, problem, hint string) {
	l.errs = append(l.errs, &SettingError{Name: setting, Value: value, Defaulted: defaulted, Problem: problem, Hint: hint})
}

// get returns the trimmed value and the raw one; "" means unset.
func (l *loader) get(setting string) (trimmed, raw string) {
	raw = l.getenv(setting)
	return strings.TrimSpace(raw), raw
}

// providerRE: a folder name that is also safe in a file name
// (config-provider-<provider>.sh) and in a shell word.
var providerRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (l *loader) provider() string {
	v, raw := l.get(EnvProvider)
	if v == "" {
		return DefaultProvider
	}
	if !providerRE.MatchString(v) || len(v) > 100 {
		l.fail(EnvProvider, raw, false, "not a valid provider folder name (letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100 characters)",
			"set a provider name such as "+DefaultProvider)
		return ""
	}
	return v
}

func (l *loader) numNodes() (int, bool) {
	v, raw := l.get(EnvNumNodes)
	if v == "" {
		return DefaultNumNodes, false
	}
	const hint = "set a whole number >= 1, e.g. 3 (1 control plane + 2 workers)"
	n, err := strconv.Atoi(v)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange):
		l.fail(EnvNumNodes, raw, false, "number too large", hint)
	case err != nil:
		l.fail(EnvNumNodes, raw, false, "not a number", hint)
	case n < 1:
		l.fail(EnvNumNodes, raw, false, "must be at least 1 (the control-plane node; every further node is a worker)", hint)
	case n > 100:
		l.fail(EnvNumNodes, raw, false, "more than 100 nodes is not supported", hint)
	default:
		return n, true
	}
	return 0, true
}

// clusterNameRE is an RFC 1123 DNS label. It is stricter than both rules that
// apply to a cluster name:
//   - kind v0.33.0 accepts `^[a-z0-9.-]+$` (pkg/internal/apis/config/validate.go);
//   - docker and podman accept container names `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
//
// The cluster name also becomes the prefix of the node containers, and a node
// container's name is its hostname and its Kubernetes node name. A hostname
// label allows neither dots nor a leading or trailing '-', so those are
// refused here although kind would take them.
var clusterNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// maxClusterNameLen keeps "<name>-control-plane", the longest node name, within
// the 63-character limit of a hostname label.
const maxClusterNameLen = 63 - len("-control-plane")

// ValidateClusterName returns nil when name can be a kind cluster name, a
// container name prefix and the prefix of the nodes' hostnames.
func ValidateClusterName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case len(name) > maxClusterNameLen:
		return fmt.Errorf("too long (%d characters): at most %d, so that the node name %q fits the 63-character hostname limit",
			len(name), maxClusterNameLen, "<name>-control-plane")
	case !clusterNameRE.MatchString(name):
		return errors.New("not a valid cluster name: use lowercase letters, digits and '-', starting and ending with a letter or digit (it prefixes the node names, which are hostnames)")
	}
	return nil
}

func (l *loader) clusterName() string {
	v, raw := l.get(EnvClusterName)
	if v == "" {
		return DefaultClusterName
	}
	if err := ValidateClusterName(v); err != nil {
		l.fail(EnvClusterName, raw, false, err.Error(), "set e.g. CLUSTER_NAME=sriov2")
		return ""
	}
	return v
}

// pathComponentRE is one component of a repository path in the OCI
// distribution grammar; go-containerregistry accepts empty components
// ("quay.io//x"), this catches them.
var pathComponentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)

// ValidateImage returns nil when ref is a well-formed image reference with an
// explicit tag or digest ("kindest/node:v1.22.2" and
// "quay.io/x/y:v1@sha256:<64 hex>" are fine).
func ValidateImage(ref string) error {
	if strings.ContainsFunc(ref, unicode.IsSpace) {
		return errors.New("contains whitespace")
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return errors.New("not a valid image reference")
	}
	repo := r.Context().RepositoryStr()
	for _, c := range strings.Split(repo, "/") {
		if !pathComponentRE.MatchString(c) {
			return fmt.Errorf("repository path %q has an invalid component %q", repo, c)
		}
	}
	if !strings.Contains(ref, "@") && !hasExplicitTag(ref) {
		return errors.New("no tag or digest (it would mean :latest)")
	}
	return nil
}

// hasExplicitTag reports whether the last path element of ref carries ":tag".
func hasExplicitTag(ref string) bool {
	last := ref[strings.LastIndex(ref, "/")+1:]
	return strings.Contains(last, ":")
}

func (l *loader) image(setting, def string) string {
	v, raw := l.get(setting)
	if v == "" {
		return def
	}
	if err := ValidateImage(v); err != nil {
		l.fail(setting, raw, false, err.Error(), "give a full image reference with a tag or digest, e.g. "+def)
		return ""
	}
	return v
}

// ipFamily reads IPFAMILY: kind's networking.ipFamily.
func (l *loader) ipFamily() string {
	v, raw := l.get(EnvIPFamily)
	switch strings.ToLower(v) {
	case "":
		return IPv4
	case IPv4, IPv6, DualStack:
		return strings.ToLower(v)
	}
	l.fail(EnvIPFamily, raw, false, "not an IP family", "set ipv4 (the default), ipv6 or dual")
	return ""
}

// unsupported refuses a setting that is true: a feature of kubevirtci's
// provider that this tool does not have yet, so that it is never silently
// ignored.
func (l *loader) unsupported(setting, provider, why, hint string) {
	v, raw := l.get(setting)
	if v == "" {
		return
	}
	b, err := ParseBool(v)
	if err != nil {
		l.fail(setting, raw, false, "not a boolean", hint)
		return
	}
	if b {
		l.fail(setting, raw, false, why+" (provider "+provider+")", hint)
	}
}

// injectorImage reads NETWORK_RESOURCES_INJECTOR_IMAGE; def is "" for a
// provider that deploys no injector, which refuses the setting.
func (l *loader) injectorImage(provider, def string) string {
	if def == "" {
		if v, raw := l.get(EnvInjectorImage); v != "" {
			l.fail(EnvInjectorImage, raw, false, "provider "+provider+" deploys no network-resources-injector", "unset it, or use a provider that deploys one (KUBEVIRT_PROVIDER=kind-sriov)")
		}
		return ""
	}
	return l.image(EnvInjectorImage, def)
}

func (l *loader) kindVersion() string {
	v, raw := l.get(EnvKindVersion)
	if v == "" {
		return CompiledKindVersion
	}
	hint := fmt.Sprintf("set a kind release as X.Y.Z or vX.Y.Z, at least %s, e.g. %s (the one compiled in)", MinKindVersion, CompiledKindVersion)
	ver, err := version.ParseSemantic(strings.TrimPrefix(v, "v"))
	if err != nil {
		l.fail(EnvKindVersion, raw, false, "not a semantic version", hint)
		return ""
	}
	if ver.LessThan(version.MustParseSemantic(MinKindVersion)) {
		l.fail(EnvKindVersion, raw, false, "too old: the cluster config is kind.x-k8s.io/v1alpha4, which kind reads since "+MinKindVersion, hint)
		return ""
	}
	return ver.String()
}

func (l *loader) kubectlPath() string {
	v, raw := l.get(EnvKubectlPath)
	if v == "" {
		return ""
	}
	if !isAbsNodePath(v) || strings.ContainsFunc(v, unicode.IsSpace) || path.Clean(v) == "/" {
		l.fail(EnvKubectlPath, raw, false, "not an absolute path of a file inside the node image",
			"set e.g. KUBECTL_PATH=/usr/bin/kubectl, or leave it unset to probe /usr/bin/kubectl and /bin/kubectl")
		return ""
	}
	return path.Clean(v)
}

// dir reads a host directory; a relative value is resolved against base.
func (l *loader) dir(setting, def, base, hint string) string {
	v, raw := l.get(setting)
	if v == "" {
		return def
	}
	if strings.ContainsRune(v, 0) {
		l.fail(setting, raw, false, "not a path", hint)
		return ""
	}
	if filepath.IsAbs(v) {
		return filepath.Clean(v)
	}
	if base == "" {
		return "" // the repository root problem is reported already
	}
	return filepath.Join(base, v)
}

// absDir reads a directory that must be absolute.
func (l *loader) absDir(setting, def string) string {
	v, raw := l.get(setting)
	if v == "" {
		return def
	}
	if !filepath.IsAbs(v) || strings.ContainsRune(v, 0) {
		l.fail(setting, raw, false, "not an absolute path", "set an absolute path, e.g. "+def)
		return ""
	}
	return filepath.Clean(v)
}

func (l *loader) cri() string {
	v, raw := l.get(EnvCRI)
	if v == "" {
		return ""
	}
	switch filepath.Base(v) {
	case "docker", "podman":
		return v
	}
	l.fail(EnvCRI, raw, false, "unknown container CLI", "set docker or podman (or a path to one of them), or leave it unset to detect one")
	return ""
}

// ParseBool accepts true/false, 1/0 and yes/no in any case.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes":
		return true, nil
	case "false", "0", "no":
		return false, nil
	}
	return false, errors.New("not a boolean")
}

func (l *loader) boolean(setting string, def bool) bool {
	v, raw := l.get(setting)
	if v == "" {
		return def
	}
	b, err := ParseBool(v)
	if err != nil {
		l.fail(setting, raw, false, "not a boolean", fmt.Sprintf("set true or false (1/0 and yes/no work too); default %t", def))
		return def
	}
	return b
}

func (l *loader) integer(setting string, def, lo, hi int, example string) int {
	v, raw := l.get(setting)
	if v == "" {
		return def
	}
	hint := fmt.Sprintf("set a whole number from %d to %d, %s", lo, hi, example)
	n, err := strconv.Atoi(v)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange):
		l.fail(setting, raw, false, "number too large", hint)
	case err != nil:
		l.fail(setting, raw, false, "not a number", hint)
	case n < lo:
		l.fail(setting, raw, false, fmt.Sprintf("must be at least %d", lo), hint)
	case n > hi:
		l.fail(setting, raw, false, fmt.Sprintf("must be at most %d", hi), hint)
	default:
		return n
	}
	return def
}

// ParseDuration accepts a Go duration ("90s", "5m", "1h30m") or whole
// seconds ("300"). The result must be positive.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 {
			return 0, errors.New("must be positive")
		}
		if n > int64((1<<63-1)/time.Second) {
			return 0, errors.New("too long")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("not a duration")
	}
	if d <= 0 {
		return 0, errors.New("must be positive")
	}
	return d, nil
}

func (l *loader) duration(setting string, def time.Duration) time.Duration {
	v, raw := l.get(setting)
	if v == "" {
		return def
	}
	d, err := ParseDuration(v)
	if err != nil {
		l.fail(setting, raw, false, err.Error(), fmt.Sprintf("set a Go duration such as \"90s\" or \"5m\", or whole seconds such as \"300\"; default %s", def))
		return def
	}
	return d
}

func (l *loader) hostPort(clusterName string) (int, bool) {
	v, raw := l.get(EnvHostPort)
	if v == "" {
		if clusterName == DefaultClusterName {
			return DefaultRegistryPort, false
		}
		return SecondRegistryPort, false
	}
	const hint = "set a TCP port from 1 to 65535 that nothing on 127.0.0.1 uses, e.g. 5002, or leave it unset (5000 for CLUSTER_NAME=sriov, 5001 otherwise)"
	n, err := strconv.Atoi(v)
	if err != nil {
		l.fail(EnvHostPort, raw, false, "not a number", hint)
		return 0, true
	}
	if n < 1 || n > 65535 {
		l.fail(EnvHostPort, raw, false, "not a TCP port (1..65535)", hint)
		return 0, true
	}
	return n, true
}

// SplitList splits a list separated by commas and/or whitespace, dropping
// empty items.
func SplitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

// ValidateInterfaceName applies the Linux kernel's rules for a network
// interface name (dev_valid_name): 1 to 15 bytes, not "." or "..", no '/',
// ':' or whitespace.
func ValidateInterfaceName(n string) error {
	switch {
	case n == "":
		return errors.New("empty")
	case len(n) > 15:
		return fmt.Errorf("%q is longer than 15 characters", n)
	case n == "." || n == "..":
		return fmt.Errorf("%q is not an interface name", n)
	case strings.ContainsAny(n, "/:"):
		return fmt.Errorf("%q contains '/' or ':'", n)
	case strings.ContainsFunc(n, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }):
		return fmt.Errorf("%q contains whitespace or a control character", n)
	}
	return nil
}

// pciAddressRE is a PCI address as sysfs names it (domain:bus:device.function).
var pciAddressRE = regexp.MustCompile(`^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$`)

func (l *loader) pfBlacklist() []string {
	v, raw := l.get(EnvPFBlacklist)
	if v == "" {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, n := range SplitList(v) {
		if pciAddressRE.MatchString(n) {
			n = strings.ToLower(n)
		} else if strings.ContainsAny(n, "*?[]") {
			// The kernel would take such a name, but no one names a NIC
			// so: it is a pattern, which would blacklist nothing.
			l.fail(EnvPFBlacklist, raw, false, fmt.Sprintf("%q is a pattern: entries are matched exactly, so it would blacklist nothing", n),
				"list exact PF names or PCI addresses separated by commas or spaces, e.g. PF_BLACKLIST=\"ens1f0,0000:3b:00.1\"")
			continue
		} else if err := ValidateInterfaceName(n); err != nil {
			l.fail(EnvPFBlacklist, raw, false, err.Error()+" (Linux interface names are at most 15 characters, without '/', ':' or whitespace; PCI addresses look like 0000:3b:00.0)",
				"list exact PF names or PCI addresses separated by commas or spaces, e.g. PF_BLACKLIST=\"ens1f0,0000:3b:00.1\"")
			continue
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

func (l *loader) dockerPrefix() string {
	v, raw := l.get(EnvDockerPrefix)
	if v == "" {
		return DefaultDockerPrefix
	}
	for _, c := range strings.Split(v, "/") {
		if !pathComponentRE.MatchString(c) {
			l.fail(EnvDockerPrefix, raw, false, fmt.Sprintf("%q is not a valid repository path component", c),
				"use lowercase letters, digits and '.', '_', '-' between them, components separated by '/', e.g. kubevirt")
			return ""
		}
	}
	return v
}

// tagRE is the OCI distribution grammar for a tag.
var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

func (l *loader) dockerTag() string {
	v, raw := l.get(EnvDockerTag)
	if v == "" {
		return DefaultDockerTag
	}
	if !tagRE.MatchString(v) {
		l.fail(EnvDockerTag, raw, false, "not a valid image tag",
			"use letters, digits, '_', '.' and '-' (not first), at most 128 characters, e.g. devel")
		return ""
	}
	return v
}

// pathList reads a list of host paths; relative ones are resolved against base.
func (l *loader) pathList(setting, base string) []string {
	v, raw := l.get(setting)
	if v == "" {
		return nil
	}
	var out []string
	for _, p := range SplitList(v) {
		if strings.ContainsRune(p, 0) {
			l.fail(setting, raw, false, "not a list of paths", "separate paths with commas or spaces")
			return nil
		}
		if !filepath.IsAbs(p) {
			if base == "" {
				continue
			}
			p = filepath.Join(base, p)
		}
		out = append(out, filepath.Clean(p))
	}
	return out
}
