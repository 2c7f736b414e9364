package interrupt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestExitCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("kind create failed"), 1},
		{context.Canceled, 130},
		{fmt.Errorf("moving PFs: %w (rolled back)", fmt.Errorf("interrupted: %w", context.Canceled)), 130},
		{context.DeadlineExceeded, 1},
	} {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// TestContext sends real signals to a child process (this test binary):
// the first cancels the context and the command goes on to finish its
// undo; a second, sent while that undo runs, ends the process.
func TestContext(t *testing.T) {
	if os.Getenv("INTERRUPT_CHILD") == "1" {
		ctx := Context(context.Background())
		fmt.Println("ready")
		<-ctx.Done()
		fmt.Println(context.Cause(ctx))
		time.Sleep(10 * time.Second) // the undo; a second signal ends it
		fmt.Println("undo finished")
		return
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestContext$", "-test.count=1")
			cmd.Env = append(os.Environ(), "INTERRUPT_CHILD=1")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan string)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			expect := func(want string) {
				t.Helper()
				select {
				case l := <-lines:
					if l != want {
						t.Fatalf("child said %q, want %q", l, want)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("child did not say %q within 5 s", want)
				}
			}
			expect("ready")
			must(t, cmd.Process.Signal(sig))
			expect("interrupted by " + map[syscall.Signal]string{syscall.SIGINT: "SIGINT (Ctrl-C)", syscall.SIGTERM: "SIGTERM"}[sig])
			must(t, cmd.Process.Signal(sig))
			for range lines {
			}
			err = cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != sig {
				t.Errorf("after a second %s the child ended with %v, want killed by %s", sig, err, sig)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
