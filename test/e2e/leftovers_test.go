package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

// A run of the suite that is killed (a CI job's time limit, a Ctrl-C during
// a cleanup) leaves its clusters behind, and the next run would refuse to
// start on the names and ports they hold. The suite therefore keeps a record
// of every cluster it is bringing up, from just before `make cluster-up`
// until a `make cluster-down` of it succeeded. The next run, holding the
// host lock, tears down what the records name, through the tool (which
// gives the PFs of the cluster's ledger back), and by force when that
// fails. Only clusters the suite itself recorded are touched: a cluster of
// the same name that something else created still fails the run with
// requireNoCluster's message.

// leftoversDir holds the records of the suite's clusters that are (or may
// be) up, one JSON file per cluster name.
var leftoversDir = filepath.Join(os.TempDir(), "kubevirtci-e2e-clusters")

// vfioMarker records that the suite created /dev/vfio/vfio (prepareHost)
// and has not removed it yet.
var vfioMarker = filepath.Join(leftoversDir, "dev-vfio-created")

// clusterRecord is what a later run needs to tear a cluster down: its name
// and every setting the tool got.
type clusterRecord struct {
	Name string            `json:"name"`
	Env  map[string]string `json:"env"`
	PID  int               `json:"pid"`
	// Dir is the checkout it was brought up from, Down the make target
	// that brings it down (empty: this checkout, cluster-down).
	Dir  string `json:"dir,omitempty"`
	Down string `json:"down,omitempty"`
}

func recordPath(name string) string { return filepath.Join(leftoversDir, name+".json") }

// recordUp notes that the cluster is about to be brought up.
func (c *cluster) recordUp() error {
	if err := os.MkdirAll(leftoversDir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(clusterRecord{Name: c.name, Env: c.env, PID: os.Getpid(), Dir: c.dir, Down: c.downTarget}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(recordPath(c.name), b, 0o644)
}

// markDown notes that a cluster-down of the cluster succeeded.
func (c *cluster) markDown() {
	c.mu.Lock()
	c.isDown = true
	c.mu.Unlock()
	_ = os.Remove(recordPath(c.name))
}

// recoverLeftovers tears down the clusters that earlier, killed runs
// recorded, and removes a /dev/vfio/vfio they created. It returns what it
// did, for the log; an error means something is still left.
func recoverLeftovers() ([]string, error) {
	var did []string
	if _, err := os.Stat(vfioMarker); err == nil {
		for _, p := range []string{"/dev/vfio/vfio", "/dev/vfio"} {
			if err := os.Remove(p); err == nil {
				did = append(did, "removed "+p+" that an earlier run created")
			}
		}
		_ = os.Remove(vfioMarker)
	}
	// The figures' plain kind cluster has a name of the suite's own.
	if n, err := removeContainers(plainClusterName); err != nil {
		return did, fmt.Errorf("removing the kind cluster %s an earlier run left: %w", plainClusterName, err)
	} else if n > 0 {
		did = append(did, "removed the kind cluster "+plainClusterName+" that an earlier run left")
	}
	files, _ := filepath.Glob(filepath.Join(leftoversDir, "*.json"))
	sort.Strings(files)
	var errs []error
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var r clusterRecord
		if err := json.Unmarshal(b, &r); err != nil || r.Name == "" {
			errs = append(errs, fmt.Errorf("%s: not a cluster record (%v); remove it", f, err))
			continue
		}
		if err := tearDownRecorded(r); err != nil {
			errs = append(errs, fmt.Errorf("cluster %s left by an earlier run (pid %d): %w", r.Name, r.PID, err))
			continue
		}
		_ = os.Remove(f)
		did = append(did, fmt.Sprintf("tore down cluster %s that an earlier run (pid %d) left", r.Name, r.PID))
	}
	// PF stand-ins (veth pairs) that a killed run left on the host; the
	// ones that were inside a node went away with its network namespace.
	links, _ := netlink.LinkList()
	for _, l := range links {
		if name := l.Attrs().Name; pfStandInName.MatchString(name) {
			if err := netlink.LinkDel(l); err == nil {
				did = append(did, "deleted the PF stand-in "+name+" that an earlier run left")
			}
		}
	}
	return did, errors.Join(errs...)
}

// pfStandInName matches the veth pairs of newPFSet (prefix e2e<letter>pf).
var pfStandInName = regexp.MustCompile(`^e2e[a-z]pf[0-9]+x?$`)

// tearDownRecorded runs `make cluster-down` with the recorded settings and,
// when that fails, removes the cluster's containers by force. A cluster
// that is already gone costs one quick cluster-down.
func tearDownRecorded(r clusterRecord) error {
	ctx, cancel := context.WithTimeout(context.Background(), downTimeout)
	defer cancel()
	dir, target := r.Dir, r.Down
	if _, err := os.Stat(filepath.Join(dir, "Makefile")); dir == "" || err != nil {
		dir = repoRoot
	}
	if target == "" {
		target = "cluster-down"
	}
	cmd := exec.CommandContext(ctx, "make", "-C", dir, "--no-print-directory", target)
	cmd.Env = environFor(r.Env)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	fmt.Fprintf(os.Stderr, "e2e: make cluster-down of the leftover cluster %s failed (%v); removing its containers by force\n%s\n", r.Name, err, tail(string(out), 20))
	_, err = removeContainers(r.Name)
	return err
}

// removeContainers removes a cluster's node containers and its registry by
// force and says how many node containers there were; containers that are
// already gone are no error.
func removeContainers(cluster string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ids, _ := docker(ctx, "ps", "-aq", "--filter", "label=io.x-k8s.kind.cluster="+cluster)
	nodes := strings.Fields(ids)
	args := append([]string{"rm", "-f", "-v", registryName(cluster)}, nodes...)
	if out, err := docker(ctx, args...); err != nil && !strings.Contains(out, "No such container") {
		return len(nodes), fmt.Errorf("docker rm: %v: %s", err, out)
	}
	return len(nodes), nil
}

// registryName is the name of a cluster's registry container.
func registryName(cluster string) string { return cluster + "-registry" }

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
