package kubewait

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// imagePullReasons are the kubelet's waiting reasons for a container whose
// image cannot be pulled.
var imagePullReasons = map[string]bool{
	"ErrImagePull":        true,
	"ImagePullBackOff":    true,
	"InvalidImageName":    true,
	"ErrImageNeverPull":   true,
	"ErrImageInspect":     true,
	"RegistryUnavailable": true,
}

// permanentPull tells, from the kubelet's message, an image pull that no
// retry can heal: the image or tag does not exist, or access is denied.
func permanentPull(reason, message string) bool {
	if reason == "InvalidImageName" || reason == "ErrImageNeverPull" {
		return true
	}
	m := strings.ToLower(message)
	for _, s := range []string{"not found", "manifest unknown", "name unknown", "denied", "unauthorized", "forbidden"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// maxMessage bounds how much of a kubelet message goes into one line.
const maxMessage = 400

// oneLine joins s into one line; a long one keeps its start and its end
// (where a pull error's cause is: "... dial tcp: lookup ghcr.io: no such
// host").
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxMessage {
		s = s[:maxMessage/2] + " ... " + s[len(s)-maxMessage/2:]
	}
	return s
}

// podReady reports whether the pod's Ready condition is True.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podTerminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// podName is "pod ns/name on node n" or "pod ns/name (not scheduled)".
func podName(p *corev1.Pod) string {
	if p.Spec.NodeName == "" {
		return fmt.Sprintf("pod %s/%s (not scheduled)", p.Namespace, p.Name)
	}
	return fmt.Sprintf("pod %s/%s on node %s", p.Namespace, p.Name, p.Spec.NodeName)
}

// A stuck reason is one that waiting does not heal: how soon a fail-fast
// wait gives up on it.
type stuck int

const (
	notStuck        stuck = iota // may heal: keep waiting
	stuckAfterGrace              // gives up after the grace (a pull that may still succeed, a pod not scheduled yet)
	stuckNow                     // gives up at once (no such image, access denied, CrashLoopBackOff)
)

// describePod says why a pod is not ready, as one problem: its name and
// node, then each reason (unscheduled, each init container and container
// that is not ready, with its waiting reason, image and message). The
// problem is stuck (see stuck) when every reason is: an image that cannot
// be pulled, a container in CrashLoopBackOff (whose last log lines the
// wait adds when it gives up), a pod the scheduler cannot place.
func describePod(p *corev1.Pod) problem {
	var reasons []string
	worst := stuckNow // the least stuck of the reasons
	add := func(s stuck, format string, args ...any) {
		reasons = append(reasons, fmt.Sprintf(format, args...))
		worst = min(worst, s)
	}
	var crashing []string
	if p.DeletionTimestamp != nil {
		add(notStuck, "terminating")
	}
	if podTerminal(p) {
		add(notStuck, "phase %s%s", p.Status.Phase, detail(p.Status.Reason, p.Status.Message))
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue {
			s := notStuck
			if c.Reason == corev1.PodReasonUnschedulable {
				s = stuckAfterGrace
			}
			add(s, "not scheduled%s", detail(c.Reason, c.Message))
		}
	}
	images := map[string]string{}
	for _, c := range p.Spec.InitContainers {
		images["init:"+c.Name] = c.Image
	}
	for _, c := range p.Spec.Containers {
		images[c.Name] = c.Image
	}
	seen := map[string]bool{}
	container := func(cs corev1.ContainerStatus, label, key string) {
		r, s := containerReason(cs, images[key])
		if w := cs.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" {
			crashing = append(crashing, cs.Name)
		}
		add(s, "%s %s %s", label, cs.Name, r)
	}
	for _, cs := range p.Status.InitContainerStatuses {
		seen["init:"+cs.Name] = true
		if cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0 {
			continue
		}
		if cs.Ready {
			continue
		}
		container(cs, "init container", "init:"+cs.Name)
	}
	for _, cs := range p.Status.ContainerStatuses {
		seen[cs.Name] = true
		if cs.Ready {
			continue
		}
		container(cs, "container", cs.Name)
	}
	if p.Spec.NodeName != "" && !podTerminal(p) {
		for _, c := range p.Spec.Containers {
			if !seen[c.Name] {
				add(notStuck, "container %s has no status yet (image %s)", c.Name, c.Image)
			}
		}
	}
	if len(reasons) == 0 {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status != corev1.ConditionTrue {
				add(notStuck, "not ready%s", detail(c.Reason, c.Message))
			}
		}
	}
	if len(reasons) == 0 {
		add(notStuck, "not ready (phase %s)", phaseOrPending(p))
	}
	pr := problem{text: podName(p) + ": " + strings.Join(reasons, "; "), kind: kindOther}
	if worst != notStuck {
		pr.kind, pr.stuck = kindStuck, worst
		for _, c := range crashing {
			pr.logs = append(pr.logs, logRef{namespace: p.Namespace, pod: p.Name, container: c})
		}
	}
	return pr
}

func phaseOrPending(p *corev1.Pod) corev1.PodPhase {
	if p.Status.Phase == "" {
		return corev1.PodPending
	}
	return p.Status.Phase
}

// CrashRestarts is how often a container in CrashLoopBackOff must have
// restarted before a fail-fast wait takes its crash loop for one that will
// not heal (the kubelet's back-offs, 10, 20 and 40 s, add up to about a
// minute by then): a container that fails while what it needs comes up
// (a pod network's pod before kube-proxy serves the API server's address
// on its node) restarts once or twice and then runs.
const CrashRestarts = 3

// containerReason describes a container that is not ready, e.g.
// "waiting: ErrImagePull (image i): message", and how stuck it is.
func containerReason(cs corev1.ContainerStatus, image string) (string, stuck) {
	if image == "" {
		image = cs.Image
	}
	restarts := ""
	if cs.RestartCount > 0 {
		restarts = fmt.Sprintf(", %d restarts", cs.RestartCount)
	}
	switch {
	case cs.State.Waiting != nil:
		w := cs.State.Waiting
		reason := w.Reason
		if reason == "" {
			reason = "no reason given"
		}
		s := fmt.Sprintf("waiting: %s (image %s%s)", reason, image, restarts)
		if w.Message != "" {
			s += ": " + oneLine(w.Message)
		}
		if lt := cs.LastTerminationState.Terminated; lt != nil && !imagePullReasons[w.Reason] {
			s += fmt.Sprintf("; last exit code %d%s", lt.ExitCode, detail(lt.Reason, lt.Message))
		}
		switch {
		case imagePullReasons[w.Reason] && permanentPull(w.Reason, w.Message):
			return s, stuckNow
		case imagePullReasons[w.Reason]:
			return s, stuckAfterGrace
		case w.Reason == "CrashLoopBackOff" && cs.RestartCount >= CrashRestarts:
			// The kubelet backs off only after the container failed.
			return s, stuckNow
		}
		return s, notStuck
	case cs.State.Terminated != nil:
		t := cs.State.Terminated
		return fmt.Sprintf("terminated: exit code %d%s%s", t.ExitCode, detail(t.Reason, t.Message), restarts), notStuck
	case cs.State.Running != nil:
		return fmt.Sprintf("running but not ready (readiness probe failing or not yet run%s)", restarts), notStuck
	}
	return fmt.Sprintf("has no state yet (image %s)", image), notStuck
}

// detail is ": reason: message" with the parts that are set.
func detail(reason, message string) string {
	s := strings.Trim(reason+": "+oneLine(message), ": ")
	if s == "" {
		return ""
	}
	return ": " + s
}
