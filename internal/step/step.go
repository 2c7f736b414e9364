// Package step prints progress a person can follow: one line per step with
// the time it took, details only when verbose.
package step

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Logger writes step lines to W (normally stderr).
type Logger struct {
	W       io.Writer
	Verbose bool
	mu      sync.Mutex
	now     func() time.Time
}

// New returns a Logger writing to w.
func New(w io.Writer, verbose bool) *Logger { return &Logger{W: w, Verbose: verbose} }

func (l *Logger) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// Run runs fn as the step called name: it prints the step when it starts and,
// when it ends, a line with its duration, or the error with the step's name.
func (l *Logger) Run(name string, fn func() error) error {
	if l == nil {
		return fn()
	}
	start := l.clock()
	l.printf(" • %s ...\n", name)
	err := fn()
	d := l.clock().Sub(start).Round(100 * time.Millisecond)
	if err != nil {
		l.printf(" ✗ %s (%s)\n", name, d)
		return fmt.Errorf("%s: %w", name, err)
	}
	l.printf(" ✓ %s (%s)\n", name, d)
	return nil
}

// Infof prints a line that is always shown (summaries, warnings).
func (l *Logger) Infof(format string, args ...any) {
	if l == nil {
		return
	}
	l.printf(format+"\n", args...)
}

// Debugf prints a detail line, shown only when verbose.
func (l *Logger) Debugf(format string, args ...any) {
	if l == nil || !l.Verbose {
		return
	}
	l.printf("   "+format+"\n", args...)
}

func (l *Logger) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.W, format, args...)
}
