// Package interrupt is how a command of the tool stops when a person or a
// CI system asks it to: the first SIGINT (Ctrl-C) or SIGTERM cancels the
// command's context, so that it stops at its next step and undoes what it
// must (every NIC back on the host); a second one ends the process the
// usual way, for when the undo itself hangs.
package interrupt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Signals are the signals that stop a command gracefully.
var Signals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// Context returns a context that the first of Signals cancels, with the
// signal as its cause (context.Cause). The signals have their default
// effect again before the context is cancelled, so a second one is never
// swallowed, however soon it follows.
func Context(parent context.Context) context.Context {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, Signals...)
	go func() {
		select {
		case sig := <-ch:
			signal.Stop(ch)
			cancel(fmt.Errorf("interrupted by %s", name(sig)))
		case <-ctx.Done():
			signal.Stop(ch)
		}
	}()
	return ctx
}

// name is the signal as a person knows it: SIGINT (Ctrl-C), SIGTERM.
func name(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT (Ctrl-C)"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// ExitCode is a command's exit status for the error it returned: 0 for
// none, 130 (what a shell reports for a command stopped by Ctrl-C) when it
// was interrupted, 1 otherwise.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled):
		return 130
	default:
		return 1
	}
}
