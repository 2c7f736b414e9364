package providers

import (
	"context"
	"io"
	"strings"
	"testing"
)

type nop struct{}

func (nop) Up(context.Context) error                { return nil }
func (nop) Down(context.Context) error              { return nil }
func (nop) Status(context.Context, io.Writer) error { return nil }
func (nop) Sync(context.Context) error              { return nil }

func TestUnknownProviderListsKnownOnes(t *testing.T) {
	Register(Description{Name: "test-a", New: func(Env) (Provider, error) { return nop{}, nil }})
	Register(Description{Name: "test-b", New: func(Env) (Provider, error) { return nop{}, nil }})
	if _, err := New("test-a", Env{}); err != nil {
		t.Fatal(err)
	}
	_, err := New("kind-9.99", Env{})
	if err == nil || !strings.Contains(err.Error(), `KUBEVIRT_PROVIDER="kind-9.99"`) || !strings.Contains(err.Error(), "test-a, test-b") {
		t.Fatalf("got %v", err)
	}
}
