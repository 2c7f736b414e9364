package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	kindlog "sigs.k8s.io/kind/pkg/log"

	"github.com/kubevirt/kubevirtci-go/images"
	"github.com/kubevirt/kubevirtci-go/internal/cgroupv1"
	"github.com/kubevirt/kubevirtci-go/internal/config"
	"github.com/kubevirt/kubevirtci-go/internal/kindcfg"
)

// Inputs of TestFigures besides EnvFigures, set by scripts/figures.sh.
const (
	// envRounds is how many times each cluster is created (default 1);
	// with more, the median is reported.
	envRounds = "FIGURES_ROUNDS"
	// Image build times measured by the script, in seconds, and what the
	// first one was ("up-to-date check" or "build").
	envImageEnsureSeconds = "FIGURES_IMAGE_ENSURE_SECONDS"
	envImageEnsureKind    = "FIGURES_IMAGE_ENSURE_KIND"
	envNodeWarmSeconds    = "FIGURES_NODE_WARM_SECONDS"
	// envProviders lists the providers measured, comma-separated
	// (default: both).
	envProviders = "FIGURES_PROVIDERS"
)

const plainClusterName = "e2e-plain"

// TestFigures measures, in one run on one machine, the time `make
// cluster-up` takes to a ready 3-node cluster against creating the same
// nodes with plain kind (the kind library, same node image), the time of
// `make cluster-down` until every PF is back, and writes them with the
// image build times to the markdown file named by KUBEVIRTCI_E2E_FIGURES.
func TestFigures(t *testing.T) {
	out := os.Getenv(EnvFigures)
	if out == "" {
		t.Skip("figures: set " + EnvFigures + " to the markdown file to write (scripts/figures.sh does)")
	}
	requireE2E(t)
	requireNoCluster(t, "sriov")
	if _, err := docker(context.Background(), "inspect", plainClusterName+"-control-plane"); err == nil {
		t.Fatalf("a kind cluster named %s exists; delete it first", plainClusterName)
	}
	rounds := 1
	if v := os.Getenv(envRounds); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive integer", envRounds, v)
		}
		rounds = n
	}
	pfs := newPFSet(t, "e2efpf", 0xf4, 4)
	stateDir := filepath.Join(t.TempDir(), "sriov-state")
	names := []string{provider, kindSRIOV}
	if v := os.Getenv(envProviders); v != "" {
		names = strings.Split(v, ",")
	}

	var all []figureData
	for _, prov := range names {
		// Warm up: mage and the tool are compiled by the first make target,
		// and the first cluster-up after an image change makes the nodes'
		// image with the component images preloaded; neither is what is
		// measured. A whole cluster-up and cluster-down also leave the
		// disk's cache as warm for the first round as for the others.
		warm := newCluster(t, clusterOpts{provider: prov, nodes: 3, pfs: pfs, stateDir: stateDir, pfCountPerNode: 2})
		if _, _, err := warm.run("cluster-up", upTimeout); err != nil {
			t.Fatalf("%s: warm-up cluster-up: %v", prov, err)
		}
		if _, _, err := warm.run("cluster-down", downTimeout); err != nil {
			t.Fatalf("%s: warm-up cluster-down: %v", prov, err)
		}
		pfs.checkBack(t)
		image := nodeImage
		if prov == kindSRIOV {
			image = images.Node136.Image()
		}
		var plainUp, plainDown, toolUp, toolDown, pfBack, returnStep []time.Duration
		var steps []stepTime
		var overheads []targetOverhead
		for r := 1; r <= rounds; r++ {
			t.Logf("%s: round %d of %d", prov, r, rounds)
			up, down := plainKind(t, image, prov == kindSRIOV)
			plainUp, plainDown = append(plainUp, up), append(plainDown, down)

			c := newCluster(t, clusterOpts{provider: prov, nodes: 3, pfs: pfs, stateDir: stateDir, pfCountPerNode: 2})
			p := c.start("cluster-up", nil)
			if err := p.wait(upTimeout); err != nil {
				t.Fatalf("%s: make cluster-up: %v", prov, err)
			}
			toolUp = append(toolUp, p.duration())
			if r == 1 {
				steps = parseSteps(p.output())
				overheads = append(overheads, measureOverhead(t, c, "status", "status"))
			}
			back, total, step := timedDown(t, c, pfs)
			pfBack, toolDown, returnStep = append(pfBack, back), append(toolDown, total), append(returnStep, step)
			pfs.checkBack(t)
			if r == 1 {
				// With the cluster gone, cluster-down has nothing to do:
				// what remains is the cost of asking for it.
				overheads = append(overheads, measureOverhead(t, c, "cluster-down", "cluster-down"))
			}
		}
		all = append(all, figureData{
			provider: prov, nodeImage: image,
			rounds: rounds, plainUp: median(plainUp), plainDown: median(plainDown),
			toolUp: median(toolUp), toolDown: median(toolDown), pfBack: median(pfBack), returnStep: median(returnStep), steps: steps,
			each:      roundTimes{plainUp: plainUp, toolUp: toolUp, plainDown: plainDown, toolDown: toolDown, pfBack: pfBack},
			overheads: overheads,
		})
	}

	doc := renderFigures(keptSection(out), all)
	if err := os.WriteFile(out, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s:\n%s", out, doc)
}

// overheadTries is how many times measureOverhead runs each way.
const overheadTries = 5

// targetOverhead is what a make target costs over the tool binary alone
// (make, mage and the tool's build check), on a warm checkout.
type targetOverhead struct {
	target, command string
	viaMake, alone  []time.Duration // every try, in order
}

// measureOverhead runs `make <target>` and the tool binary's <command>
// (what the target ends in) overheadTries times each, alternating, with
// the cluster's settings, and returns their times. Both must succeed.
func measureOverhead(t *testing.T, c *cluster, target, command string) targetOverhead {
	t.Helper()
	o := targetOverhead{target: target, command: command}
	bin := filepath.Join(c.dir, "_out", "bin", "kubevirtci")
	timed := func(name string, args ...string) time.Duration {
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = c.dir, c.environ()
		start := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return d
	}
	for i := 0; i < overheadTries; i++ {
		o.viaMake = append(o.viaMake, timed("make", "-C", c.dir, "--no-print-directory", target))
		o.alone = append(o.alone, timed(bin, command))
	}
	t.Logf("%s: make %s %s s, the tool alone %s s", c.name, target, list2(o.viaMake), list2(o.alone))
	return o
}

// plainKind creates a 3-node cluster with the kind library (one control
// plane, two workers, the node image given, kind's defaults otherwise, but
// for failCgroupV1: false on a cgroup v1 host when cgroupV1Patch, without
// which a 1.35+ kubelet does not start there), waits until every node and
// every kube-system pod is Ready, and deletes it. It returns both times.
func plainKind(t *testing.T, nodeImage string, cgroupV1Patch bool) (up, down time.Duration) {
	t.Helper()
	p := kindcluster.NewProvider(kindcluster.ProviderWithDocker(), kindcluster.ProviderWithLogger(kindlog.NoopLogger{}))
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := &v1alpha4.Cluster{Nodes: []v1alpha4.Node{
		{Role: v1alpha4.ControlPlaneRole, Image: nodeImage},
		{Role: v1alpha4.WorkerRole, Image: nodeImage},
		{Role: v1alpha4.WorkerRole, Image: nodeImage},
	}}
	if v2, err := cgroupv1.Unified(); cgroupV1Patch && err == nil && !v2 {
		cfg.KubeadmConfigPatches = []string{kindcfg.KubeletCgroupV1Patch()}
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			if err := p.Delete(plainClusterName, kc); err != nil {
				t.Errorf("cleanup: deleting kind cluster %s: %v", plainClusterName, err)
			}
		}
	})
	start := time.Now()
	if err := p.Create(plainClusterName, kindcluster.CreateWithV1Alpha4Config(cfg), kindcluster.CreateWithKubeconfigPath(kc),
		kindcluster.CreateWithDisplayUsage(false), kindcluster.CreateWithDisplaySalutation(false)); err != nil {
		t.Fatalf("plain kind create: %v", err)
	}
	created := time.Since(start)
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := eventually(10*time.Minute, 500*time.Millisecond, func() (bool, error) { return allReady(cs, 3) }); err != nil {
		t.Fatalf("plain kind cluster not ready: %v", err)
	}
	up = time.Since(start)
	t.Logf("plain kind: created in %s, ready in %s", created.Round(time.Second), up.Round(time.Second))
	start = time.Now()
	if err := p.Delete(plainClusterName, kc); err != nil {
		t.Fatalf("plain kind delete: %v", err)
	}
	deleted = true
	down = time.Since(start)
	t.Logf("plain kind: deleted in %s", down.Round(time.Second))
	return up, down
}

// allReady reports whether nodes nodes and every kube-system pod are Ready.
func allReady(cs kubernetes.Interface, nodes int) (bool, error) {
	ctx := context.Background()
	ns, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err
	}
	if len(ns.Items) != nodes {
		return false, fmt.Errorf("%d nodes", len(ns.Items))
	}
	for _, n := range ns.Items {
		if !condTrue(n.Status.Conditions) {
			return false, fmt.Errorf("node %s not Ready", n.Name)
		}
	}
	pods, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err
	}
	if len(pods.Items) == 0 {
		return false, fmt.Errorf("no kube-system pods")
	}
	for _, p := range pods.Items {
		ready := false
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			return false, fmt.Errorf("pod %s not Ready", p.Name)
		}
	}
	return true, nil
}

func condTrue(cs []corev1.NodeCondition) bool {
	for _, c := range cs {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// timedDown runs `make cluster-down` and measures, besides its duration,
// when every PF is back on the host with its original state (polled every
// 10ms while cluster-down runs), and reads the duration of the tool's
// return step from its output (-1 when it is not there).
func timedDown(t *testing.T, c *cluster, pfs *pfSet) (back, total, step time.Duration) {
	t.Helper()
	p := c.start("cluster-down", nil)
	backCh := make(chan time.Duration, 1)
	go func() {
		for !p.exited() {
			if pfs.allBack() {
				backCh <- time.Since(p.started)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		backCh <- -1
	}()
	if err := p.wait(downTimeout); err != nil {
		t.Fatalf("make cluster-down: %v", err)
	}
	c.markDown()
	total = p.duration()
	back = <-backCh
	if back < 0 {
		t.Fatalf("cluster-down ended (after %s) before every PF was seen back", total)
	}
	step = -1
	for _, s := range parseSteps(p.output()) {
		if strings.HasPrefix(s.name, "Returning SR-IOV PFs") {
			if d, err := time.ParseDuration(s.took); err == nil {
				step = d
			}
		}
	}
	return back, total, step
}

type stepTime struct {
	name string
	took string
}

var stepLine = regexp.MustCompile(`^ ✓ (.+) \(([0-9][0-9.hms]*)\)$`)

// parseSteps collects the "✓ step (duration)" lines of the tool's output.
func parseSteps(out string) []stepTime {
	var s []stepTime
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m := stepLine.FindStringSubmatch(sc.Text()); m != nil {
			s = append(s, stepTime{m[1], m[2]})
		}
	}
	return s
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

type figureData struct {
	provider, nodeImage                  string
	rounds                               int
	plainUp, plainDown, toolUp, toolDown time.Duration
	each                                 roundTimes // every round's, in order
	pfBack, returnStep                   time.Duration
	steps                                []stepTime
	overheads                            []targetOverhead
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

// roundTimes are the figures of every round, for their spread.
type roundTimes struct {
	plainUp, toolUp, plainDown, toolDown, pfBack []time.Duration
}

// seconds lists durations as "77.0, 85.0 and 86.0 s".
func seconds(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = fmt.Sprintf("%.1f", d.Seconds())
	}
	if len(s) > 1 {
		return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1] + " s"
	}
	return strings.Join(s, "") + " s"
}

// ratioRange is the lowest and highest of the rounds' ratios a[i]/b[i].
func ratioRange(a, b []time.Duration) string {
	lo, hi := 0.0, 0.0
	for i := range min(len(a), len(b)) {
		r := a[i].Seconds() / b[i].Seconds()
		if i == 0 || r < lo {
			lo = r
		}
		if i == 0 || r > hi {
			hi = r
		}
	}
	return fmt.Sprintf("%.2f to %.2f", lo, hi)
}

// ciHeading starts the last section of the figures document: the CI run's
// time, which .ci/run reports and people copy in. It is kept as it is when
// the document is written again.
const ciHeading = "## The whole CI run"

// keptSection is the CI section of the existing document, or "".
func keptSection(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if i := strings.Index(string(b), ciHeading); i >= 0 {
		return string(b[i:])
	}
	return ""
}

func renderFigures(kept string, all []figureData) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Figures")
	w("")
	w("Measured by `scripts/figures.sh` (test `TestFigures` in `test/e2e`) on %s, in one run on one machine: %s.",
		time.Now().UTC().Format("2006-01-02"), machine())
	w("Every image built from source (registry image `%s`); kind library %s.", registryImage, images.Kind)
	w("")
	w("| provider | plain kind, to ready | `make cluster-up`, to ready | ratio | kind delete | `make cluster-down` | ratio | every PF back |")
	w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, f := range all {
		w("| `%s` | %s | %s | **%.2f** | %s | %s | **%.2f** | %s |", f.provider, secs(f.plainUp), secs(f.toolUp), f.toolUp.Seconds()/f.plainUp.Seconds(),
			secs(f.plainDown), secs(f.toolDown), f.toolDown.Seconds()/f.plainDown.Seconds(), secs(f.pfBack))
	}
	if len(all) > 0 && all[0].rounds > 1 {
		w("")
		w("Each figure is the median of %d rounds. The rounds, in order:", all[0].rounds)
		w("")
		for _, f := range all {
			e := f.each
			w("- `%s`: plain kind to ready %s, `make cluster-up` %s (ratios %s); kind delete %s, `make cluster-down` %s (ratios %s); every PF back %s.",
				f.provider, seconds(e.plainUp), seconds(e.toolUp), ratioRange(e.toolUp, e.plainUp),
				seconds(e.plainDown), seconds(e.toolDown), ratioRange(e.toolDown, e.plainDown), seconds(e.pfBack))
		}
	}
	renderOverheads(w, all)
	for _, f := range all {
		renderProvider(w, f)
	}
	w("## Node and registry images")
	w("")
	imageFigures(w)
	w("")
	if kept != "" {
		b.WriteString(kept)
		return b.String()
	}
	w("%s", ciHeading)
	w("")
	w("`.ci/run` reports its own duration (unit, integration and end-to-end tests, images included).")
	return b.String()
}

// renderOverheads writes what each measured make target costs over the
// tool binary alone.
func renderOverheads(w func(string, ...any), all []figureData) {
	var rows []string
	for _, f := range all {
		for _, o := range f.overheads {
			rows = append(rows, fmt.Sprintf("| `KUBEVIRT_PROVIDER=%s make %s` | %s | `_out/bin/kubevirtci %s`: %s | **+%.2f s** | %s; %s s |",
				f.provider, o.target, secs2(median(o.viaMake)), o.command, secs2(median(o.alone)),
				median(o.viaMake).Seconds()-median(o.alone).Seconds(), list2(o.viaMake), list2(o.alone)))
		}
	}
	if len(rows) == 0 {
		return
	}
	w("")
	w("What a make target costs over the tool itself, on a warm checkout (make, mage and the tool's build check;")
	w("median of %d tries each way, alternating; `status` on the live cluster, `cluster-down` once it is gone):", overheadTries)
	w("")
	w("| target | through make | the tool alone | overhead | the tries (through make; alone) |")
	w("| --- | ---: | ---: | ---: | --- |")
	for _, r := range rows {
		w("%s", r)
	}
}

func secs2(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// list2 lists durations in seconds with two decimals: "0.50, 0.40, 0.60".
func list2(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = fmt.Sprintf("%.2f", d.Seconds())
	}
	return strings.Join(s, ", ")
}

func renderProvider(w func(string, ...any), f figureData) {
	w("")
	w("## `%s`: a 3-node cluster, from nothing to ready", f.provider)
	w("")
	w("Node image `%s`.", f.nodeImage)
	w("")
	w("| | time |")
	w("| --- | ---: |")
	w("| plain kind: the kind library creates 1 control plane + 2 workers (kind's defaults, same node image), until every node and every kube-system pod is Ready | %s |", secs(f.plainUp))
	w("| `make cluster-up` with `KUBEVIRT_PROVIDER=%s`, `KUBEVIRT_NUM_NODES=3`, `PF_COUNT_PER_NODE=2` (4 PFs moved, %d VFs each), until it returns | %s |", f.provider, config.DefaultVFsCount, secs(f.toolUp))
	w("| **ratio** (make cluster-up / plain kind) | **%.2f** |", f.toolUp.Seconds()/f.plainUp.Seconds())
	w("")
	w("`make cluster-up` does more than kind: the registry, the node fix-ups, the SR-IOV PFs and VFs, the component images")
	w("(preloaded in the nodes' image, `localhost/kubevirtci-node-preload:<hash>`, which the first cluster-up after an image")
	w("change makes in 25 to 45 s, before the rounds (a cluster-up and cluster-down to warm up), and the rounds reuse; it carries every image unpacked, the node image's own too, where")
	w("plain kind's nodes unpack theirs as their pods start, as with kind's own node images, and the unpacked layers outside")
	w("`/var`, so that creating a node copies none of them into its `/var` volume), the components deployed and")
	w("waited for (DaemonSets rolled out on exactly their nodes, with kind-sriov the injector's Deployment and webhook, every")
	w("pod of the cluster Ready), and waits for DNS and every kube-system pod by watching. The one wait left out is the allocatable")
	w("`kubevirt.io/sriov_net` count (`SRIOV_SKIP_ALLOCATABLE_WAIT=true`): the PFs are simulated and the device plugin reads")
	w("the kernel's sysfs, where they have no VF. Its steps in the first round:")
	w("")
	w("| step | time |")
	w("| --- | ---: |")
	for _, s := range f.steps {
		w("| %s | %s |", s.name, s.took)
	}
	w("")
	w("Tearing down:")
	w("")
	w("| | time |")
	w("| --- | ---: |")
	w("| `make cluster-down`: from its start until every PF is back on the host (original name, MAC, MTU, state) | %s |", secs(f.pfBack))
	if f.returnStep >= 0 {
		w("| of which the tool's step \"Returning SR-IOV PFs to the host\" (the rest is make, mage and the tool starting, and the host check) | %s |", secs(f.returnStep))
	}
	w("| `make cluster-down`: until it returns (PFs, nodes, registry, files) | %s |", secs(f.toolDown))
	w("| plain kind: deleting the 3-node cluster | %s |", secs(f.plainDown))
	w("")
	w("The PFs are veth pairs described as SR-IOV PFs by a simulated sysfs (`SRIOV_SYSFS_ROOT`); the moves between")
	w("network namespaces are real.")
	w("")
}

func imageFigures(w func(string, ...any)) {
	w("| | time |")
	w("| --- | ---: |")
	if s := os.Getenv(envImageEnsureSeconds); s != "" {
		kind := os.Getenv(envImageEnsureKind)
		if kind == "" {
			kind = "build or up-to-date check"
		}
		w("| `make images` in this run (%s) | %s s |", kind, s)
	}
	if s := os.Getenv(envNodeWarmSeconds); s != "" {
		w("| node image rebuilt with every cache warm (`KUBEVIRTCI_IMAGE_FORCE=1 scripts/mage.sh image:node`) | %s s |", s)
	}
	rows := imagesDocRows()
	if len(rows) > 0 {
		w("")
		w("From [images.md](images.md) (cold and warm builds, measured when the images were built):")
		w("")
		for _, r := range rows {
			w("%s", r)
		}
	}
}

// imagesDocRows are the lines of docs/images.md that give cold or warm
// build times (table rows), with the table's header when there is one.
func imagesDocRows() []string {
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs", "images.md"))
	if err != nil {
		return nil
	}
	var rows []string
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		low := strings.ToLower(l)
		if strings.HasPrefix(strings.TrimSpace(l), "|") && (strings.Contains(low, "cold") || strings.Contains(low, "warm")) {
			if len(rows) == 0 && i >= 2 && strings.HasPrefix(strings.TrimSpace(lines[i-1]), "| -") {
				rows = append(rows, lines[i-2], lines[i-1])
			} else if len(rows) == 0 {
				rows = append(rows, "| build | time |", "| --- | --- |")
			}
			rows = append(rows, l)
		}
	}
	return rows
}

// machine describes the machine measured, without naming it.
func machine() string {
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/1024/1024)
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	dv, _ := docker(context.Background(), "version", "--format", "{{.Server.Version}}")
	return fmt.Sprintf("%d CPUs%s, Linux %s, docker %s, %s", runtime.NumCPU(), mem, strings.TrimSpace(string(kernel)), dv, runtime.Version())
}

// TestRenderFiguresRounds: with more than one round, the document gives
// every round's figures and the spread of the ratios, not only medians.
func TestRenderFiguresRounds(t *testing.T) {
	s := func(secs ...float64) []time.Duration {
		var ds []time.Duration
		for _, x := range secs {
			ds = append(ds, time.Duration(x*float64(time.Second)))
		}
		return ds
	}
	each := roundTimes{plainUp: s(77, 85, 86), toolUp: s(116, 114, 113), plainDown: s(4, 6, 5), toolDown: s(10, 9, 11), pfBack: s(0.7, 0.6, 0.8)}
	doc := renderFigures("", []figureData{{provider: "kind-1.22-sriov", rounds: 3, plainUp: 85 * time.Second, toolUp: 114 * time.Second,
		plainDown: 5 * time.Second, toolDown: 10 * time.Second, pfBack: 700 * time.Millisecond, each: each,
		overheads: []targetOverhead{{target: "status", command: "status", viaMake: s(0.5, 0.4, 0.6), alone: s(0.2, 0.25, 0.3)}}}})
	for _, want := range []string{
		"| `KUBEVIRT_PROVIDER=kind-1.22-sriov make status` | 0.50 s | `_out/bin/kubevirtci status`: 0.25 s | **+0.25 s** | 0.50, 0.40, 0.60; 0.20, 0.25, 0.30 s |",
		"Each figure is the median of 3 rounds. The rounds, in order:",
		"plain kind to ready 77.0, 85.0 and 86.0 s, `make cluster-up` 116.0, 114.0 and 113.0 s (ratios 1.31 to 1.51)",
		"kind delete 4.0, 6.0 and 5.0 s, `make cluster-down` 10.0, 9.0 and 11.0 s (ratios 1.50 to 2.50)",
		"every PF back 0.7, 0.6 and 0.8 s.",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the figures lack %q:\n%s", want, doc)
		}
	}
}
