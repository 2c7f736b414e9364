package cmdrun

import (
	"context"
	"strings"
	"testing"
)

func TestExecErrorCarriesCommandAndOutput(t *testing.T) {
	_, err := Exec{}.Run(context.Background(), nil, "sh", "-c", "echo out; echo 'it broke' >&2; exit 3")
	re, ok := IsRunError(err)
	if !ok {
		t.Fatalf("want a RunError, got %v", err)
	}
	if re.Command() != `sh -c 'echo out; echo '"'"'it broke'"'"' >&2; exit 3'` {
		t.Fatalf("command not pasteable: %s", re.Command())
	}
	for _, want := range []string{"out", "it broke", "exit status 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestExecStdin(t *testing.T) {
	out, err := Exec{}.Run(context.Background(), strings.NewReader("hello"), "cat")
	if err != nil || string(out) != "hello" {
		t.Fatalf("%q %v", out, err)
	}
}

func TestFakeUnexpectedCommandFails(t *testing.T) {
	f := (&Fake{}).On("ok", nil, "docker", "ps")
	if out, err := f.Run(context.Background(), nil, "docker", "ps", "-a"); err != nil || string(out) != "ok" {
		t.Fatal(out, err)
	}
	if _, err := f.Run(context.Background(), nil, "docker", "rm", "x"); err == nil {
		t.Fatal("an unscripted command must fail")
	}
	if got := strings.Join(f.Commands(), "|"); got != "docker ps -a|docker rm x" {
		t.Fatal(got)
	}
}

func TestEnvPrefixesVariables(t *testing.T) {
	out, err := Env{Runner: Exec{}, Env: []string{"KVCI_TEST=42"}}.Run(context.Background(), nil, "sh", "-c", "echo $KVCI_TEST")
	if err != nil || strings.TrimSpace(string(out)) != "42" {
		t.Fatalf("%q %v", out, err)
	}
}
