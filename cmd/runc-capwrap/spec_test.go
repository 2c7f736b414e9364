package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// allCaps is what a privileged container asks for (a subset is enough).
var allCaps = []string{"CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_BPF", "CAP_FUTURE_THING"}

// bndWithout is a bounding set of capabilities 0..40 without the given ones.
func bndWithout(caps ...uint) uint64 {
	b := uint64(1<<41) - 1
	for _, c := range caps {
		b &^= 1 << c
	}
	return b
}

func TestSpecTarget(t *testing.T) {
	cases := []struct {
		args []string
		want target
		ok   bool
	}{
		{[]string{"--root", "/run/runc", "--log", "/x.log", "--log-format", "json", "create", "--bundle", "/b", "--pid-file", "/p", "id"}, target{"/b/config.json", true}, true},
		{[]string{"--systemd-cgroup", "create", "-b", "/b2", "id"}, target{"/b2/config.json", true}, true},
		{[]string{"run", "--bundle=/b3", "id"}, target{"/b3/config.json", true}, true},
		{[]string{"create", "id"}, target{"config.json", true}, true},
		{[]string{"--root", "/r", "exec", "--process", "/tmp/p.json", "--detach", "id"}, target{"/tmp/p.json", false}, true},
		{[]string{"exec", "-p=/tmp/q.json", "id"}, target{"/tmp/q.json", false}, true},
		{[]string{"exec", "id", "ls"}, target{}, false},
		{[]string{"--root", "/r", "start", "id"}, target{}, false},
		{[]string{"--root", "create"}, target{}, false}, // "create" is the value of --root
		{[]string{"--version"}, target{}, false},
		{nil, target{}, false},
	}
	for _, c := range cases {
		got, ok := specTarget(c.args)
		if ok != c.ok || got != c.want {
			t.Errorf("specTarget(%q) = %+v, %v; want %+v, %v", c.args, got, ok, c.want, c.ok)
		}
	}
}

func TestRewriteSpecRemovesMissingCaps(t *testing.T) {
	spec := map[string]any{
		"ociVersion": "1.0.2",
		"process": map[string]any{
			"args": []string{"/sbin/init"},
			"capabilities": map[string]any{
				"bounding": allCaps, "effective": allCaps, "inheritable": allCaps,
				"permitted": allCaps, "ambient": allCaps,
			},
		},
		"hostname": "node",
	}
	in, _ := json.Marshal(spec)
	out, changed, err := RewriteSpec(in, bndWithout(24)) // no CAP_SYS_RESOURCE
	if err != nil || !changed {
		t.Fatalf("RewriteSpec: changed=%v err=%v", changed, err)
	}
	var got struct {
		OCIVersion string `json:"ociVersion"`
		Hostname   string `json:"hostname"`
		Process    struct {
			Args         []string            `json:"args"`
			Capabilities map[string][]string `json:"capabilities"`
		} `json:"process"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := []string{"CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_BPF", "CAP_FUTURE_THING"}
	for _, set := range capSets {
		if !reflect.DeepEqual(got.Process.Capabilities[set], want) {
			t.Errorf("%s = %v, want %v", set, got.Process.Capabilities[set], want)
		}
	}
	if got.OCIVersion != "1.0.2" || got.Hostname != "node" || !reflect.DeepEqual(got.Process.Args, []string{"/sbin/init"}) {
		t.Errorf("other fields not kept: %s", out)
	}
}

func TestRewriteSpecNoChange(t *testing.T) {
	in := []byte(`{"process":{"capabilities":{"bounding":["CAP_CHOWN"],"effective":null}}, "x": 1}`)
	out, changed, err := RewriteSpec(in, bndWithout(24))
	if err != nil || changed || string(out) != string(in) {
		t.Fatalf("want unchanged input, got changed=%v err=%v out=%s", changed, err, out)
	}
	// No process at all.
	if _, changed, err := RewriteSpec([]byte(`{"root":{}}`), 0); err != nil || changed {
		t.Fatalf("spec without process: changed=%v err=%v", changed, err)
	}
}

func TestRewriteSpecBadJSON(t *testing.T) {
	if _, _, err := RewriteSpec([]byte(`{"process":{"capabilities":{"bounding":"CAP_CHOWN"}}}`), 0); err == nil {
		t.Fatal("want an error for a string where a list belongs")
	}
	if _, _, err := RewriteSpec([]byte(`not json`), 0); err == nil {
		t.Fatal("want an error for bad JSON")
	}
}

func TestRewriteProcessFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "process.json")
	in := `{"args":["sh"],"capabilities":{"bounding":["CAP_SYS_RESOURCE","CAP_KILL"],"ambient":["CAP_SYS_RESOURCE"]}}`
	if err := os.WriteFile(p, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rewriteFile(target{Path: p}, bndWithout(24)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	var got struct {
		Args         []string            `json:"args"`
		Capabilities map[string][]string `json:"capabilities"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Capabilities["bounding"], []string{"CAP_KILL"}) || len(got.Capabilities["ambient"]) != 0 || got.Capabilities["ambient"] == nil {
		t.Errorf("capabilities = %v", got.Capabilities)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
}

func TestReadBoundingSet(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status")
	os.WriteFile(p, []byte("Name:\tx\nCapPrm:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\n"), 0o644)
	got, err := readBoundingSet(p)
	if err != nil || got != 0x1fffeffffff {
		t.Fatalf("got %x, %v", got, err)
	}
	if got&(1<<24) != 0 {
		t.Fatal("CAP_SYS_RESOURCE should be absent")
	}
	os.WriteFile(p, []byte("Name:\tx\n"), 0o644)
	if _, err := readBoundingSet(p); err == nil {
		t.Fatal("want error without CapBnd")
	}
}
