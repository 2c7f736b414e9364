package cmdrun

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Fake is a scripted Runner for unit tests. Each call is recorded; the first
// Response whose Prefix matches the start of the command line answers it.
// A call that matches no response fails the call with an error naming it, so
// that a test notices commands it did not expect.
type Fake struct {
	mu        sync.Mutex
	Responses []Response
	Calls     []Call
}

// Response scripts the answer to commands starting with Prefix.
type Response struct {
	Prefix []string
	Stdout string
	Err    error // returned wrapped in a *RunError
	// Times limits how often this response is used (0 = always).
	Times int
	used  int
}

// Call is one recorded invocation.
type Call struct {
	Argv  []string
	Stdin string
}

// On adds a response and returns the fake, for chaining.
func (f *Fake) On(stdout string, err error, prefix ...string) *Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Responses = append(f.Responses, Response{Prefix: prefix, Stdout: stdout, Err: err})
	return f
}

// Run implements Runner.
func (f *Fake) Run(_ context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	argv := append([]string{name}, args...)
	var in string
	if stdin != nil {
		b, _ := io.ReadAll(stdin)
		in = string(b)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, Call{Argv: argv, Stdin: in})
	for i := range f.Responses {
		r := &f.Responses[i]
		if r.Times > 0 && r.used >= r.Times {
			continue
		}
		if hasPrefix(argv, r.Prefix) {
			r.used++
			if r.Err != nil {
				return []byte(r.Stdout), &RunError{Argv: argv, Stdout: []byte(r.Stdout), Err: r.Err}
			}
			return []byte(r.Stdout), nil
		}
	}
	return nil, &RunError{Argv: argv, Err: fmt.Errorf("unexpected command in test: %s", strings.Join(argv, " "))}
}

// Commands returns the recorded command lines, each joined by spaces.
func (f *Fake) Commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.Calls))
	for i, c := range f.Calls {
		out[i] = strings.Join(c.Argv, " ")
	}
	return out
}

func hasPrefix(argv, prefix []string) bool {
	if len(prefix) > len(argv) {
		return false
	}
	for i, p := range prefix {
		if argv[i] != p {
			return false
		}
	}
	return true
}
