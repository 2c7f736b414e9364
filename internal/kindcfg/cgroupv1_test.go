package kindcfg

import (
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

func TestKubeletCgroupV1Patch(t *testing.T) {
	var p struct {
		APIVersion   string `yaml:"apiVersion"`
		Kind         string `yaml:"kind"`
		FailCgroupV1 *bool  `yaml:"failCgroupV1"`
	}
	dec := yaml.NewDecoder(strings.NewReader(KubeletCgroupV1Patch()))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("patch %q: %v", KubeletCgroupV1Patch(), err)
	}
	// kind matches a patch to the documents of the same kind (and
	// apiVersion, when the patch names one).
	if p.Kind != "KubeletConfiguration" || p.APIVersion != "kubelet.config.k8s.io/v1beta1" {
		t.Errorf("patch targets %s %s, want the KubeletConfiguration kind renders", p.APIVersion, p.Kind)
	}
	if p.FailCgroupV1 == nil || *p.FailCgroupV1 {
		t.Errorf("failCgroupV1 = %v, want false", p.FailCgroupV1)
	}
}
