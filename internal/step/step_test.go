package step

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRunPrintsDurationAndNamesFailures(t *testing.T) {
	var b bytes.Buffer
	l := New(&b, false)
	t0 := time.Unix(0, 0)
	calls := 0
	l.now = func() time.Time { calls++; return t0.Add(time.Duration(calls-1) * 1500 * time.Millisecond) }
	if err := l.Run("Creating cluster", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	err := l.Run("Moving NICs", func() error { return errors.New("boom") })
	if err == nil || err.Error() != "Moving NICs: boom" {
		t.Fatalf("the error must name the step: %v", err)
	}
	l.Debugf("hidden")
	out := b.String()
	for _, want := range []string{"✓ Creating cluster (1.5s)", "✗ Moving NICs (1.5s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Error("debug lines must need -v")
	}
}
