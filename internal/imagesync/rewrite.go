package imagesync

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Change is one image reference in a manifest: rewritten (To set) or left
// alone although it is under the prefix (To empty, Why says why).
type Change struct {
	Source    string // file
	Object    string // Kind namespace/name
	Container string // containers[app], initContainers[init]
	From      string
	To        string
	Why       string
}

func (c Change) String() string {
	if c.To == "" {
		return fmt.Sprintf("%s: %s %s: %s left as is: %s", c.Source, c.Object, c.Container, c.From, c.Why)
	}
	return fmt.Sprintf("%s: %s %s: %s -> %s", c.Source, c.Object, c.Container, c.From, c.To)
}

// Rewriter pins image references in pod templates to pushed images.
//
// A reference is the developer's image when its repository is
// <DOCKER_PREFIX>/<name> under no host (Docker Hub implied), docker.io,
// localhost, the prefix's own host, the host-side registry
// (localhost:<port>, 127.0.0.1:<port>) or the in-cluster one
// (registry:5000); and its tag is the pushed tag (a reference without a tag
// means "latest"). A reference with a digest and no tag matches the one image
// pushed under that name. Such a reference becomes
// registry:5000/<path>/<name>@sha256:<digest>: a reused tag still rolls out,
// without `imagePullPolicy: Always`.
//
// Only the image fields of containers and initContainers of Pods and of the
// pod templates of Deployments, DaemonSets, StatefulSets, ReplicaSets,
// ReplicationControllers, Jobs and CronJobs are touched.
type Rewriter struct {
	Prefix Prefix
	Hosts  []string          // hosts besides the prefix's and the implied ones
	Images map[string]Pushed // by name:tag
}

// NewRewriter builds a Rewriter for pushed images. registry is the host-side
// registry (localhost:5000), cluster the in-cluster one (registry:5000).
func NewRewriter(p Prefix, registry, cluster string, pushed []Pushed) *Rewriter {
	rw := &Rewriter{Prefix: p, Hosts: append(registryHosts(registry), cluster), Images: map[string]Pushed{}}
	for _, img := range pushed {
		rw.Images[img.Name+":"+img.Tag] = img
	}
	return rw
}

// podSpecPath is where the pod spec of a kind lives, by group and kind.
func podSpecPath(group, kind string) []string {
	switch group + "/" + kind {
	case "/Pod":
		return []string{"spec"}
	case "apps/Deployment", "apps/DaemonSet", "apps/StatefulSet", "apps/ReplicaSet",
		"extensions/Deployment", "extensions/DaemonSet", "extensions/ReplicaSet",
		"/ReplicationController", "batch/Job":
		return []string{"spec", "template", "spec"}
	case "batch/CronJob":
		return []string{"spec", "jobTemplate", "spec", "template", "spec"}
	}
	return nil
}

// Rewrite rewrites obj in place and reports each reference under the prefix.
func (rw *Rewriter) Rewrite(obj *unstructured.Unstructured, source string) ([]Change, error) {
	gvk := obj.GroupVersionKind()
	path := podSpecPath(gvk.Group, gvk.Kind)
	if path == nil {
		return nil, nil
	}
	what := gvk.Kind + " " + obj.GetName()
	if ns := obj.GetNamespace(); ns != "" {
		what = gvk.Kind + " " + ns + "/" + obj.GetName()
	}
	var changes []Change
	for _, field := range []string{"containers", "initContainers"} {
		fp := append(append([]string{}, path...), field)
		list, found, err := unstructured.NestedSlice(obj.Object, fp...)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: .%s: %v", source, what, strings.Join(fp, "."), err)
		}
		if !found {
			continue
		}
		touched := false
		for k, item := range list {
			c, ok := item.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: %s: .%s[%d] is not an object", source, what, strings.Join(fp, "."), k)
			}
			image, _ := c["image"].(string)
			if image == "" {
				continue
			}
			cname, _ := c["name"].(string)
			ch, ok := rw.pin(image)
			if !ok {
				continue
			}
			ch.Source, ch.Object, ch.Container = source, what, fmt.Sprintf("%s[%s]", field, cname)
			if ch.To != "" && ch.To != image {
				c["image"] = ch.To
				touched = true
			}
			changes = append(changes, ch)
		}
		if touched {
			if err := unstructured.SetNestedSlice(obj.Object, list, fp...); err != nil {
				return nil, err
			}
		}
	}
	return changes, nil
}

// pin decides what happens to one reference; ok is false for references
// that are not under the prefix (not the developer's images).
func (rw *Rewriter) pin(image string) (Change, bool) {
	repo, tag, digest := splitRef(strings.TrimSpace(image))
	n, ok := rw.Prefix.match(repo, rw.Hosts...)
	if !ok {
		return Change{}, false
	}
	ch := Change{From: image}
	switch {
	case tag != "":
		if img, ok := rw.Images[n+":"+tag]; ok {
			ch.To = img.ClusterRef
			return ch, true
		}
	case digest != "":
		var found []Pushed
		for _, img := range rw.Images {
			if img.Name == n {
				found = append(found, img)
			}
		}
		if len(found) == 1 {
			ch.To = found[0].ClusterRef
			return ch, true
		}
	default:
		if img, ok := rw.Images[n+":latest"]; ok {
			ch.To = img.ClusterRef
			return ch, true
		}
		tag = "latest"
	}
	var have []string
	for k, img := range rw.Images {
		if img.Name == n {
			have = append(have, k)
		}
	}
	sort.Strings(have)
	if len(have) == 0 {
		ch.Why = fmt.Sprintf("no image %s was synced", n)
	} else if tag != "" {
		ch.Why = fmt.Sprintf("tag %s was not synced (synced: %s)", tag, strings.Join(have, ", "))
	} else {
		ch.Why = fmt.Sprintf("several tags were synced (%s); write the tag", strings.Join(have, ", "))
	}
	return ch, true
}
