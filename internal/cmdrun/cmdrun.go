// Package cmdrun runs external commands (the container CLI, modprobe, ...)
// behind a small interface so that callers can be tested with a scripted fake.
//
// Commands are always run from an argv, never through a shell string. A
// failure returns a *RunError that carries the exact command line and its
// output, so that a user can paste the command and see for themselves.
package cmdrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"al.essio.dev/pkg/shellescape"
)

// Runner runs one command and returns its standard output.
type Runner interface {
	// Run runs name with args, feeding stdin (may be nil). It returns the
	// command's standard output. When the command fails, the error is a
	// *RunError holding the command line, stdout and stderr.
	Run(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error)
}

// RunError is returned when a command exits non-zero or cannot be started.
type RunError struct {
	Argv   []string
	Stdout []byte
	Stderr []byte
	Err    error
}

// Command is the failing command line, quoted so that it can be pasted into a shell.
func (e *RunError) Command() string {
	q := make([]string, len(e.Argv))
	for i, a := range e.Argv {
		q[i] = shellescape.Quote(a)
	}
	return strings.Join(q, " ")
}

// Output is the command's combined output, trimmed.
func (e *RunError) Output() string {
	var parts []string
	if s := strings.TrimSpace(string(e.Stdout)); s != "" {
		parts = append(parts, s)
	}
	if s := strings.TrimSpace(string(e.Stderr)); s != "" {
		parts = append(parts, s)
	}
	return strings.Join(parts, "\n")
}

func (e *RunError) Error() string {
	out := e.Output()
	if out == "" {
		return fmt.Sprintf("command failed: %s: %v", e.Command(), e.Err)
	}
	return fmt.Sprintf("command failed: %s: %v\n%s", e.Command(), e.Err, indent(out))
}

func (e *RunError) Unwrap() error { return e.Err }

func indent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}

// Exec is the Runner that runs real processes. When Verbose is set, every
// command line is written to Log before it runs, and its stderr is copied there too.
type Exec struct {
	Log     io.Writer
	Verbose bool
}

// Run implements Runner.
func (x Exec) Run(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	argv := append([]string{name}, args...)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if x.Verbose && x.Log != nil {
		fmt.Fprintf(x.Log, "    $ %s\n", (&RunError{Argv: argv}).Command())
		cmd.Stderr = io.MultiWriter(&stderr, prefixWriter{x.Log})
	}
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &RunError{Argv: argv, Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Err: err}
	}
	return stdout.Bytes(), nil
}

type prefixWriter struct{ w io.Writer }

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if l != "" {
			fmt.Fprint(p.w, "      "+l)
		}
	}
	return len(b), nil
}

// IsRunError reports whether err is (or wraps) a *RunError and returns it.
func IsRunError(err error) (*RunError, bool) {
	var re *RunError
	ok := errors.As(err, &re)
	return re, ok
}

// Env wraps a Runner so that commands get extra environment variables.
// With the real Exec runner the variables are added to this process's
// environment; a Fake records them as a leading "env K=V" in the argv.
type Env struct {
	Runner Runner
	Env    []string
}

// Run implements Runner by running `env K=V... name args...`.
func (e Env) Run(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	return e.Runner.Run(ctx, stdin, "env", append(append(append([]string{}, e.Env...), name), args...)...)
}
