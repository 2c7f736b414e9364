// Package kubewait waits for cluster state by watching it through client-go
// informers (list, then watch, re-listing when a watch expires), never by
// sleeping. Each wait takes its own timeout; when it runs out, the error
// names what is missing: which node, which pod, and why (each container's
// waiting reason, with its image). A timeout of zero or less means the wait
// has no timeout of its own and ends only with its context.
package kubewait

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kubevirt/kubevirtci-go/internal/kube"
)

// ErrWontHeal is the cause (see Error.Err) of a wait that stopped early
// under FailFast: what is left does not heal by waiting.
var ErrWontHeal = errors.New("what is left does not heal by waiting")

// Error is the error of a wait that did not reach its goal.
type Error struct {
	// What the wait was for, e.g. "daemonsets sriov/{a,b} available".
	What string
	// Timeout is the wait's own timeout (0: none).
	Timeout time.Duration
	// Err is the cause: context.DeadlineExceeded when the timeout ran out,
	// the context's error when it was cancelled, ErrWontHeal when the
	// wait failed fast.
	Err error
	// Problems lists what was still missing when the wait ended, one
	// line each, e.g. "pod sriov/x on node n: container c waiting:
	// ErrImagePull (image i): message".
	Problems []string
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case errors.Is(e.Err, ErrWontHeal):
		fmt.Fprintf(&b, "gave up waiting for %s: what is left will not heal by waiting (images that cannot be pulled, containers crashing, pods that cannot be scheduled)", e.What)
	case errors.Is(e.Err, context.DeadlineExceeded) && e.Timeout > 0:
		fmt.Fprintf(&b, "timed out after %s waiting for %s", e.Timeout, e.What)
	default:
		fmt.Fprintf(&b, "stopped waiting for %s: %v", e.What, e.Err)
	}
	if len(e.Problems) > 0 {
		b.WriteString(":")
		for _, p := range e.Problems {
			b.WriteString("\n  - ")
			b.WriteString(p)
		}
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Option changes how a wait behaves.
type Option func(*options)

type options struct {
	failFast bool
	grace    time.Duration
	progress func(string)
}

// FailFast ends a wait early, with ErrWontHeal, once every remaining
// problem is one that waiting does not heal: a container whose image
// cannot be pulled (ErrImagePull, ImagePullBackOff, InvalidImageName,
// ...), a container in CrashLoopBackOff, a pod the scheduler cannot place.
// It gives up at once when the kubelet says the image does not exist or
// access is denied, or a container crash-loops and has restarted
// CrashRestarts times (the error then carries the last lines of its log); otherwise when it has been so for Grace
// (the kubelet's first two pull back-offs, 10 and 20 s, so that a pull
// that fails once for a passing reason is retried, and a scheduler that
// waits for a node to become ready gets the time). By default a wait keeps
// going until its timeout, because an image may still arrive (pushed to a
// registry or loaded into the nodes later), and then reports the problems
// in its message.
func FailFast() Option { return func(o *options) { o.failFast = true } }

// Grace is how long FailFast lets problems that may still heal be the only
// ones before it gives up.
const Grace = 35 * time.Second

// LogLines is how many lines of a crash-looping container's last log a
// fail-fast error carries.
const LogLines = 8

// withGrace changes Grace (tests).
func withGrace(d time.Duration) Option { return func(o *options) { o.grace = d } }

// WithProgress calls fn with a one-line summary of what is still missing
// whenever that summary changes (for verbose output).
func WithProgress(fn func(summary string)) Option { return func(o *options) { o.progress = fn } }

// problem kinds: a summary line never blocks fail-fast; an image pull
// failure allows it; anything else prevents it.
type problemKind int

const (
	kindOther problemKind = iota
	kindSummary
	kindStuck
)

type problem struct {
	text string
	kind problemKind
	// stuck says how soon a fail-fast wait gives up on a kindStuck
	// problem.
	stuck stuck
	// logs are the containers whose last log lines a fail-fast error
	// shows.
	logs []logRef
}

// logRef names a container, for its logs.
type logRef struct{ namespace, pod, container string }

type status struct {
	done     bool
	problems []problem
}

func (s *status) add(kind problemKind, format string, args ...any) {
	s.problems = append(s.problems, problem{text: fmt.Sprintf(format, args...), kind: kind})
}

func (s *status) merge(o status) { s.problems = append(s.problems, o.problems...) }

// onlyStuck reports whether every remaining problem is stuck (nothing
// else blocks), and whether one of them is stuck for good now.
func (s *status) onlyStuck() (only, now bool) {
	n := 0
	for _, p := range s.problems {
		switch p.kind {
		case kindStuck:
			n++
			now = now || p.stuck == stuckNow
		case kindOther:
			return false, false
		}
	}
	return n > 0, now
}

func (s *status) lines() []string {
	out := make([]string, len(s.problems))
	for i, p := range s.problems {
		out[i] = p.text
	}
	return out
}

// watchSet runs the informers of one wait and signals every change.
type watchSet struct {
	client  kubernetes.Interface
	changed chan struct{}

	informers map[string]cache.SharedIndexInformer
	order     []string

	mu   sync.Mutex
	errs map[string]string
}

func newWatchSet(client kubernetes.Interface) *watchSet {
	return &watchSet{
		client:    client,
		changed:   make(chan struct{}, 1),
		informers: map[string]cache.SharedIndexInformer{},
		errs:      map[string]string{},
	}
}

func (w *watchSet) notify() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// informer registers the informer made by mk under key (once) and returns
// its store.
func (w *watchSet) informer(key string, mk func() cache.SharedIndexInformer) cache.Store {
	if inf, ok := w.informers[key]; ok {
		return inf.GetStore()
	}
	inf := mk()
	notify := func() { w.notify() }
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	})
	_ = inf.SetWatchErrorHandler(func(r *cache.Reflector, err error) {
		// An expired watch is re-listed by the reflector: not a problem.
		if kube.RenewedWatch(err) {
			return
		}
		w.mu.Lock()
		w.errs[key] = err.Error()
		w.mu.Unlock()
		w.notify()
	})
	w.informers[key] = inf
	w.order = append(w.order, key)
	return inf.GetStore()
}

func (w *watchSet) watchErrors() []problem {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []problem
	for _, key := range w.order {
		if e, ok := w.errs[key]; ok {
			out = append(out, problem{text: fmt.Sprintf("watching %s failed (retrying): %s", key, e)})
		}
	}
	return out
}

func (w *watchSet) unsynced() []string {
	var out []string
	for _, key := range w.order {
		if !w.informers[key].HasSynced() {
			out = append(out, key)
		}
	}
	return out
}

// wait runs the informers setup registers, then evaluates the check it
// returns after every change until the check is done, the timeout runs out
// or ctx ends.
func wait(ctx context.Context, client kubernetes.Interface, what string, timeout time.Duration, opts []Option, setup func(*watchSet) func() status) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		wctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()

	ws := newWatchSet(client)
	check := setup(ws)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, key := range ws.order {
		inf := ws.informers[key]
		wg.Add(1)
		go func() {
			defer wg.Done()
			inf.Run(stop)
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()

	fail := func(cause error, problems []problem) error {
		e := &Error{What: what, Timeout: timeout, Err: cause}
		for _, p := range problems {
			e.Problems = append(e.Problems, p.text)
		}
		return e
	}
	cause := func() error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return context.DeadlineExceeded
	}

	// The initial lists are in memory once HasSynced; there is no event
	// for that, so look every few milliseconds (local state only).
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for len(ws.unsynced()) > 0 {
		select {
		case <-wctx.Done():
			var ps []problem
			for _, key := range ws.unsynced() {
				ps = append(ps, problem{text: "could not list " + key})
			}
			return fail(cause(), append(ps, ws.watchErrors()...))
		case <-tick.C:
		}
	}
	tick.Stop()

	if o.grace == 0 {
		o.grace = Grace
	}
	var stuckSince time.Time // since when only stuck problems are left
	var graceOver <-chan time.Time
	last := ""
	for {
		st := check()
		if st.done {
			return nil
		}
		if o.failFast {
			only, now := st.onlyStuck()
			switch {
			case only && (now || !stuckSince.IsZero() && time.Since(stuckSince) >= o.grace):
				return fail(ErrWontHeal, withLogs(ctx, client, st.problems))
			case only && stuckSince.IsZero():
				stuckSince = time.Now()
				graceOver = time.After(o.grace)
			case !only:
				stuckSince, graceOver = time.Time{}, nil
			}
		}
		if o.progress != nil {
			if s := strings.Join(st.lines(), "; "); s != last {
				last = s
				o.progress(s)
			}
		}
		select {
		case <-wctx.Done():
			// One last look: the goal may have been reached just now.
			if st = check(); st.done {
				return nil
			}
			return fail(cause(), append(st.problems, ws.watchErrors()...))
		case <-ws.changed:
		case <-graceOver:
			graceOver = nil
		}
	}
}

// withLogs adds to each problem the last lines of the log of its
// crash-looping containers (their previous run).
func withLogs(ctx context.Context, client kubernetes.Interface, ps []problem) []problem {
	out := make([]problem, len(ps))
	for i, p := range ps {
		for _, l := range p.logs {
			tailLines := int64(LogLines)
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			b, err := client.CoreV1().Pods(l.namespace).GetLogs(l.pod, &corev1.PodLogOptions{Container: l.container, Previous: true, TailLines: &tailLines}).DoRaw(lctx)
			cancel()
			if err != nil {
				p.text += fmt.Sprintf("\n      (the log of container %s: %v)", l.container, err)
				continue
			}
			lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			p.text += fmt.Sprintf("\n      last %d lines of container %s's log:", len(lines), l.container)
			for _, line := range lines {
				p.text += "\n        " + line
			}
		}
		out[i] = p
	}
	return out
}

// braces names several objects of one namespace: "ns/{a,b}" or "ns/a".
func braces(namespace string, names []string) string {
	prefix := ""
	if namespace != "" {
		prefix = namespace + "/"
	}
	if len(names) == 1 {
		return prefix + names[0]
	}
	s := append([]string(nil), names...)
	sort.Strings(s)
	return prefix + "{" + strings.Join(s, ",") + "}"
}
