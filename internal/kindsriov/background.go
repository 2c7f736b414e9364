package kindsriov

import "context"

// background is work a step starts and a later step joins (the component
// images' load, the registry's start), so that it overlaps with the steps
// between. A failed or interrupted Up stops it before undoing anything.
type background struct {
	done   chan struct{} // closed when fn has returned
	cancel context.CancelFunc
}

// goBackground runs fn in the background with a context of its own,
// derived from ctx.
func goBackground(ctx context.Context, fn func(ctx context.Context)) *background {
	ctx, cancel := context.WithCancel(ctx)
	b := &background{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(b.done)
		fn(ctx)
	}()
	return b
}

// wait waits for the work to end; when ctx ends first, it stops the work
// and returns ctx's error.
func (b *background) wait(ctx context.Context) error {
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		b.stop()
		return ctx.Err()
	}
}

// stop cancels the work and waits for it to end; a nil b has nothing to
// stop.
func (b *background) stop() {
	if b == nil {
		return
	}
	b.cancel()
	<-b.done
}
