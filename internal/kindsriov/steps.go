package kindsriov

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kubevirt/kubevirtci-go/internal/config"
)

// A step of cluster-up: what it does and how it is undone.
type step struct {
	// name is the step line; empty when do prints its own.
	name string
	do   func(ctx context.Context, st *upState) error
	// creates names what do creates outside this process ("" for nothing,
	// or only inside the nodes, which goes with them). do records it in
	// upState (st.made) before it starts creating, so that a failure
	// half-way is undone too.
	creates string
	// undo removes what do creates. It works from what it observes on the
	// host (names, the SR-IOV ledger, files) and succeeds when there is
	// nothing to remove, so Down runs it whatever an earlier run left.
	undo *undo
	// release runs after every step's undo, once the nodes are deleted:
	// what a node can hold busy (a VF bound to a VM) is released last.
	release *undo
	// inspect: a failed cluster-up leaves what this step created, so that
	// the failure can be inspected; an interrupted one undoes it.
	inspect bool
	// off leaves the step out of this cluster's table (a setting turns
	// it off).
	off bool
}

// undo is one named cleanup action.
type undo struct {
	name string // the step line
	fn   func(ctx context.Context) error
	// advice is added to the error when fn fails.
	advice string
	// beside: Down runs it beside the undos that follow it (it removes
	// something none of them needs); the releases wait for it.
	beside bool
}

// What the steps create; upState.made records which ones this run did.
const (
	madeCluster  = "the kind cluster"
	madeFiles    = "the kubectl and config-provider files"
	madeRegistry = "the registry"
	madeNICs     = "the SR-IOV PFs"
)

// steps is cluster-up, in order, each step with its undo. Down runs the
// undos in reverse order (then the releases): the PFs leave the nodes
// first, while their network namespaces exist, then the registry, the
// files and the nodes go, and the VF counts are reset last.
//
// kind create runs in the background from its step on. Once the nodes
// have booted and the API server answers (kubeadm is starting the control
// plane), what needs only the node containers runs beside it: the
// registry's start, the nodes' configuration, the PFs' move and the SR-IOV
// nodes' preparation; they no longer add their seconds after it. What
// adds pods (the components) waits for kind create to return: on a
// 2-core host the workers' start keeps both cores busy, and pods started
// during kind create delayed it by more than they gained (kind-sriov,
// alternating runs on one machine: 50, 53 and 66 s with the components
// deployed once the API server answered; 47 to 54 s with every step after
// kind create; 43 and 46 s like this). The device plugin's pods start after the VFs exist
// (it does not look for new ones): they run only on nodes labelled after
// the PFs' move.
func (p *Provider) steps() []step {
	c := p.cfg()
	again := "fix the cause and run `make cluster-down` again"
	// A registry proxy's setup restarts each node's containerd, which
	// must not happen while kubeadm runs in it: kind create is waited for
	// first then.
	proxy := c.RegistryProxy != ""
	waitCreate := step{name: "Waiting for kind create (the control plane and the workers joining)", do: p.waitCreate}
	steps := []step{
		{name: "Checking the host", do: p.preflight},
		// The node image with the local component images preloaded (its
		// own step line when it has to be made).
		{do: p.preloadImages},
		{
			name: "Creating kind cluster " + c.ClusterName + " (in the background)", do: p.startCreate,
			creates: madeCluster, inspect: true,
			undo: &undo{name: "Deleting kind cluster " + c.ClusterName, fn: p.deleteCluster, advice: again},
		},
		{name: "Waiting for kind to boot the nodes and start the API server", do: p.waitNodes},
		{
			name: "Writing kubectl and config-provider files", do: p.writeFiles,
			creates: madeFiles, inspect: true,
			undo: &undo{name: "Removing kubectl and config-provider files", fn: p.removeFiles, advice: again},
		},
		withOff(waitCreate, !proxy),
		{name: "Pointing the nodes' containerd at the registry proxy " + c.RegistryProxy, do: p.setupProxy, off: !proxy},
		{
			name: "Starting registry " + c.RegistryContainer() + " (in the background)", do: p.startRegistry,
			creates: madeRegistry, inspect: true,
			undo: &undo{name: "Removing registry " + c.RegistryContainer(), fn: p.removeRegistry, advice: again, beside: true},
		},
		// In the nodes, beside the PFs' move and the SR-IOV nodes'
		// preparation, which need nothing of it; the components are
		// deployed once it is done (they pull through the registry
		// settings it writes).
		{name: "Configuring nodes (registries, br_netfilter) in the background", do: p.startConfigure},
		{
			name: "Moving SR-IOV PFs into the workers, creating and binding VFs", do: p.moveNICs,
			creates: madeNICs,
			undo: &undo{name: "Returning SR-IOV PFs to the host", fn: p.returnNetdevs,
				advice: "nothing else was removed, so that the NICs can still be found; fix the cause and run `make cluster-down` again"},
			release: &undo{name: "Restoring the PFs' VF counts", fn: p.returnNICs, advice: again},
		},
		{name: "Preparing the SR-IOV nodes", do: p.prepareNodes},
		{name: "Waiting for the API server; writing kubeconfig", do: p.waitAPIServer},
		{name: "Waiting for the nodes' configuration", do: p.waitConfigure},
		withOff(waitCreate, proxy),
		{name: "Labelling the SR-IOV nodes", do: p.labelSRIOVNodes},
		{do: p.deployComponents},
		// After the labels: its webhook would refuse the pods of the
		// SR-IOV nodes until it serves.
		{do: p.deployInjector},
		{name: "Node roles, the control plane's taints, kind's storage class; etcd on tmpfs", do: p.fixUpNodes},
		{name: "Waiting for the control plane, DNS and kube-system pods", do: p.waitCluster},
		{name: "Waiting for registry " + c.RegistryContainer(), do: p.waitRegistry},
		{do: p.waitComponents},
	}
	return slices.DeleteFunc(steps, func(s step) bool { return s.off })
}

func withOff(s step, off bool) step {
	s.off = off
	return s
}

// Up implements providers.Provider: it runs the steps in order. A failure
// undoes what this run created that a person does not need to see the
// failure (the PFs go back to the host) and leaves the rest; an interrupt
// undoes everything this run created. Nothing that was there before is
// touched.
func (p *Provider) Up(ctx context.Context) (err error) {
	c := p.cfg()
	start := time.Now()
	if err := c.RequireNodes(2, "SR-IOV PFs are moved into worker nodes"); err != nil {
		return err
	}
	// One cluster-up per cluster at a time, host-wide: a second one waits
	// for the first, then finds the cluster up and says so.
	release, err := p.deps.lockCluster(ctx)
	if err != nil {
		return fmt.Errorf("%w\n\nNothing was changed", err)
	}
	defer release()
	steps := p.steps()
	st := &upState{made: map[string]bool{}}
	defer st.stopBackground(p.env.Log)
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return p.rollback(steps, st, fmt.Errorf("interrupted: %w", err), true)
		}
		if err := p.runStep(ctx, s, st); err != nil {
			var up *alreadyUpError
			if errors.As(err, &up) {
				return err
			}
			interrupted := ctx.Err() != nil
			if interrupted {
				// The step's own error may be the signal's doing (its
				// commands share the terminal's process group).
				err = fmt.Errorf("interrupted: %w", err)
			}
			return p.rollback(steps, st, err, interrupted)
		}
	}
	p.summary(st, time.Since(start))
	return nil
}

func (p *Provider) runStep(ctx context.Context, s step, st *upState) error {
	do := func() error {
		if h := p.deps.hook; h != nil {
			if err := h(ctx, s.name, false); err != nil {
				return err
			}
		}
		if err := s.do(ctx, st); err != nil {
			return err
		}
		if h := p.deps.hook; h != nil {
			return h(ctx, s.name, true)
		}
		return nil
	}
	if s.name == "" {
		return do()
	}
	return p.env.Log.Run(s.name, do)
}

// rollback undoes, in reverse order, what this run created: everything
// when interrupted, else all but what is left for inspection. It returns
// cause with a report of what it undid, what it left and why.
func (p *Provider) rollback(steps []step, st *upState, cause error, interrupted bool) error {
	log := p.env.Log
	st.stopBackground(log)
	if len(st.made) == 0 {
		return fmt.Errorf("%w\n\nNothing was changed", cause)
	}
	// The context may be cancelled (Ctrl-C): undoing is what the user
	// wants then, so it gets a fresh one, bounded.
	ctx, cancel := context.WithTimeout(context.Background(), returnTimeout)
	defer cancel()
	// A step that failed before it made anything (kind create failing
	// before any node exists) leaves nothing to inspect: its undo runs
	// (it removes the files the step wrote) and it is not reported.
	empty := map[string]bool{}
	if st.made[madeCluster] {
		if ok, err := p.kind.Exists(ctx, p.cfg().ClusterName); err == nil && !ok {
			empty[madeCluster] = true
		}
	}
	undoes := func(s step) bool { return st.made[s.creates] && (interrupted || !s.inspect || empty[s.creates]) }
	pending := map[string]int{} // undo actions not yet done, per thing made
	var failed error
	for _, release := range []bool{false, true} {
		for i := len(steps) - 1; i >= 0; i-- {
			u := steps[i].undo
			if release {
				u = steps[i].release
			}
			if u == nil || !undoes(steps[i]) {
				continue
			}
			pending[steps[i].creates]++
			if failed != nil {
				continue
			}
			if err := log.Run(u.name, func() error { return u.fn(ctx) }); err != nil {
				failed = fmt.Errorf("%w (%s)", err, u.advice)
				continue
			}
			pending[steps[i].creates]--
		}
	}
	r := &rollbackError{cause: cause, cluster: p.cfg().ClusterName, failed: failed, existed: st.existed}
	for i := len(steps) - 1; i >= 0; i-- {
		s := steps[i]
		switch {
		case s.creates == "" || !st.made[s.creates]:
		case empty[s.creates] && pending[s.creates] == 0:
		case !undoes(s):
			r.kept = append(r.kept, p.describe(s.creates))
		case pending[s.creates] > 0:
			r.left = append(r.left, p.describe(s.creates))
		default:
			r.undone = append(r.undone, p.describe(s.creates))
		}
	}
	return r
}

// describe names what a step creates, for the rollback's report.
func (p *Provider) describe(made string) string {
	c := p.cfg()
	switch made {
	case madeCluster:
		return "kind cluster " + c.ClusterName + " (its nodes and " + c.KubeconfigPath() + ")"
	case madeFiles:
		return "kubectl and config-provider files in " + c.StateDir()
	case madeRegistry:
		return "registry " + c.RegistryContainer()
	case madeNICs:
		return "SR-IOV PFs of cluster " + c.ClusterName + " (given back to the host)"
	}
	return made
}

// rollbackError is a failed or interrupted cluster-up, with what its
// rollback did.
type rollbackError struct {
	cause   error
	cluster string
	undone  []string // in the order undone
	kept    []string // left for inspection
	left    []string // not undone because an undo failed
	failed  error
	existed []string
}

func (e *rollbackError) Unwrap() error { return e.cause }

func (e *rollbackError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v\n", e.cause)
	if len(e.undone) > 0 {
		fmt.Fprintf(&b, "\nUndone, in this order: %s.", strings.Join(e.undone, ", "))
	}
	if e.failed != nil {
		fmt.Fprintf(&b, "\nUndoing failed: %v\nNot undone: %s.", e.failed, strings.Join(e.left, ", "))
	}
	if len(e.kept) > 0 {
		fmt.Fprintf(&b, "\nLeft for inspection (created by this run): %s.", strings.Join(e.kept, ", "))
	}
	if len(e.kept)+len(e.left) > 0 {
		fmt.Fprintf(&b, "\n`make cluster-down` (%s=%s) removes what is left.", config.EnvClusterName, e.cluster)
	} else {
		b.WriteString("\nNothing this run created is left.")
	}
	if len(e.existed) > 0 {
		fmt.Fprintf(&b, "\nLeft as it was (there before this run): %s.", strings.Join(e.existed, ", "))
	}
	return b.String()
}

// Down implements providers.Provider: every step's undo, in reverse order
// (those marked beside at the same time as the ones after them), then the
// releases. Each works from what it finds, so Down cleans up after
// a crash at any point of Up, and succeeds when there is nothing to remove.
// It stops at the first undo that fails: the PFs go back to the host before
// anything else is removed.
func (p *Provider) Down(ctx context.Context) error {
	c := p.cfg()
	log := p.env.Log
	if err := log.Run("Checking the host", func() error { return p.setup(ctx) }); err != nil {
		return err
	}
	steps := p.steps()
	var besides []chan error // the undos running beside the others
	join := func() error {
		var errs []error
		for _, done := range besides {
			errs = append(errs, <-done)
		}
		besides = nil
		return errors.Join(errs...)
	}
	for _, release := range []bool{false, true} {
		if release {
			if err := join(); err != nil {
				return err
			}
		}
		for i := len(steps) - 1; i >= 0; i-- {
			u := steps[i].undo
			if release {
				u = steps[i].release
			}
			if u == nil {
				continue
			}
			run := func() error {
				if err := log.Run(u.name, func() error { return u.fn(ctx) }); err != nil {
					return fmt.Errorf("%w\n\n%s", err, capitalize(u.advice))
				}
				return nil
			}
			if u.beside && !release {
				done := make(chan error, 1)
				go func() { done <- run() }()
				besides = append(besides, done)
				continue
			}
			if err := run(); err != nil {
				return errors.Join(err, join())
			}
		}
	}
	log.Infof("\nCluster %s is gone.", c.ClusterName)
	return nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
