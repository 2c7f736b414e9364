package kubeapply

import (
	"strings"
	"testing"
)

func TestDecodeDocuments(t *testing.T) {
	in := `# leading comment
---
apiVersion: v1
kind: Namespace
metadata:
  name: sriov
--- # a separator may carry a comment
# a document with only comments is skipped
---

---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: a, namespace: sriov}
  data: {n: "1"}
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: b, namespace: sriov}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: ds
  namespace: sriov
spec:
  template:
    spec:
      terminationGracePeriodSeconds: 10
`
	objs, err := Decode(strings.NewReader(in), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	want := "Namespace/sriov ConfigMap/a ServiceAccount/b DaemonSet/ds"
	if strings.Join(got, " ") != want {
		t.Fatalf("objects = %v, want %s", got, want)
	}
	// Numbers decode as int64, which unstructured helpers (DeepCopy) need.
	v, ok := objs[3].Object["spec"].(map[string]interface{})["template"].(map[string]interface{})["spec"].(map[string]interface{})["terminationGracePeriodSeconds"].(int64)
	if !ok || v != 10 {
		t.Fatalf("terminationGracePeriodSeconds = %#v, want int64 10", v)
	}
	_ = objs[3].DeepCopy()
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{
			name: "bad indentation in the second document",
			in:   "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n   namespace: c\n",
			want: "test.yaml:10: ",
		},
		{
			name: "duplicate key",
			in:   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\nkind: Secret\n",
			want: `test.yaml:5: `,
		},
		{
			name: "missing kind",
			in:   "---\n\napiVersion: v1\nmetadata:\n  name: b\n",
			want: `test.yaml:3: object "b" has no kind`,
		},
		{
			name: "missing name",
			in:   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: b-\n",
			want: "test.yaml:1: ConfigMap has no metadata.name",
		},
		{
			name: "not a mapping",
			in:   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n- a\n- b\n",
			want: "test.yaml:5: document is not a mapping",
		},
		{
			name: "tab indentation",
			in:   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: a\n",
			want: "test.yaml:4: ",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tc.in), "test.yaml")
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %q, want prefix %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "error converting YAML to JSON") {
				t.Errorf("error %q carries the converter's noise", err)
			}
		})
	}
}

func TestDecodeEmpty(t *testing.T) {
	objs, err := Decode(strings.NewReader("# nothing\n---\n---\n"), "empty.yaml")
	if err != nil || len(objs) != 0 {
		t.Fatalf("Decode = %v, %v; want no objects, no error", objs, err)
	}
}
