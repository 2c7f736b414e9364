package cri

import (
	"context"
	"fmt"
	"os/exec"
	"sort"

	"github.com/kubevirt/kubevirtci-go/internal/cmdrun"
)

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Detect picks the container CLI. An explicit choice (CRI_BIN) is used as
// given. Otherwise, as the old provider did, podman is tried first, then
// docker; a CLI counts only when its engine answers, so that a podman binary
// without a working engine does not shadow a running docker.
func Detect(ctx context.Context, explicit string, run cmdrun.Runner, lookPath func(string) (string, error)) (CLI, error) {
	if explicit != "" {
		c := CLI{Bin: explicit, Run: run}
		if err := c.Ping(ctx); err != nil {
			return CLI{}, fmt.Errorf("CRI_BIN=%q: the engine does not answer (is it running?): %w", explicit, err)
		}
		return c, nil
	}
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	var tried []string
	for _, bin := range []string{"podman", "docker"} {
		if _, err := lookPath(bin); err != nil {
			tried = append(tried, bin+": not installed")
			continue
		}
		c := CLI{Bin: bin, Run: run}
		if err := c.Ping(ctx); err != nil {
			tried = append(tried, bin+": engine does not answer")
			continue
		}
		return c, nil
	}
	return CLI{}, fmt.Errorf("no container engine found (%v); install and start docker or podman, or set CRI_BIN=docker|podman", tried)
}
