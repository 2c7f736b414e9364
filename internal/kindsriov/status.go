package kindsriov

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubevirt/kubevirtci-go/internal/cri"
	"github.com/kubevirt/kubevirtci-go/internal/localregistry"
)

// Status implements providers.Provider.
func (p *Provider) Status(ctx context.Context, w io.Writer) error {
	if err := p.setup(ctx); err != nil {
		return err
	}
	c := p.cfg()
	exists, err := p.kind.Exists(ctx, c.ClusterName)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "provider:    %s (kind %s, %s)\n", p.spec.Name, p.kind.Version(), p.cli.Name())
	if !exists {
		fmt.Fprintf(w, "cluster:     %s is not running (make cluster-up)\n", c.ClusterName)
	} else {
		fmt.Fprintf(w, "cluster:     %s\n", c.ClusterName)
	}
	if _, err := os.Stat(c.KubeconfigPath()); err == nil {
		fmt.Fprintf(w, "kubeconfig:  %s\n", c.KubeconfigPath())
		fmt.Fprintf(w, "kubectl:     cluster-up/kubectl.sh (or %s --kubeconfig %s)\n", c.KubectlHostPath(), c.KubeconfigPath())
	}
	reg, err := p.cli.Inspect(ctx, c.RegistryContainer())
	switch {
	case errors.Is(err, cri.ErrNotFound):
		fmt.Fprintf(w, "registry:    %s does not exist\n", c.RegistryContainer())
	case err != nil:
		return err
	default:
		state := "running"
		if !reg.Running {
			state = "NOT running"
		}
		fmt.Fprintf(w, "registry:    %s %s (%s), localhost:%d from the host, %s from the cluster\n",
			c.RegistryContainer(), state, reg.Image, c.RegistryHostPort, localregistry.ClusterHost)
	}
	if exists {
		if err := p.printNodes(ctx, w); err != nil {
			fmt.Fprintf(w, "nodes:       cannot list: %v\n", err)
		}
	}
	return p.statusSRIOV(ctx, w)
}

func (p *Provider) printNodes(ctx context.Context, w io.Writer) error {
	client, _, err := p.deps.client(p.cfg().KubeconfigPath())
	if err != nil {
		return err
	}
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	fmt.Fprintln(w, "nodes:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tSTATUS\tROLES\tVERSION")
	for _, n := range list.Items {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", n.Name, readiness(&n), roles(&n), n.Status.NodeInfo.KubeletVersion)
	}
	return tw.Flush()
}

func readiness(n *corev1.Node) string {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				return "Ready"
			}
			return "NotReady"
		}
	}
	return "Unknown"
}

func roles(n *corev1.Node) string {
	var r []string
	for k := range n.Labels {
		if strings.HasPrefix(k, "node-role.kubernetes.io/") {
			r = append(r, strings.TrimPrefix(k, "node-role.kubernetes.io/"))
		}
	}
	sort.Strings(r)
	if len(r) == 0 {
		return "<none>"
	}
	return strings.Join(r, ",")
}
