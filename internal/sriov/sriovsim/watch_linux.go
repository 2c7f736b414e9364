package sriovsim

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// watch sets up the watches, applies what was written before, and returns
// the loop to run.
func (s *Sim) watch() (func(context.Context) error, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		if err := s.Sync(); err != nil {
			return nil, err
		}
		return s.pollLoop, nil
	}
	for _, p := range s.watched() {
		if _, err := unix.InotifyAddWatch(fd, p, unix.IN_CLOSE_WRITE); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("sriovsim: watch %s: %w", p, err)
		}
	}
	if err := s.Sync(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return func(ctx context.Context) error {
		defer unix.Close(fd)
		// A pipe wakes the poll up when ctx ends.
		var wake [2]int
		if err := unix.Pipe2(wake[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
			return fmt.Errorf("sriovsim: pipe: %w", err)
		}
		defer unix.Close(wake[0])
		woken := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			unix.Write(wake[1], []byte{0})
			close(woken)
		})
		defer func() {
			if !stop() {
				<-woken // the write is under way: let it finish before closing
			}
			unix.Close(wake[1])
		}()
		buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.PathMax))
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(wake[0]), Events: unix.POLLIN}}
		for ctx.Err() == nil {
			n, err := unix.Poll(fds, -1)
			if err != nil && !errors.Is(err, unix.EINTR) {
				return fmt.Errorf("sriovsim: poll: %w", err)
			}
			if n <= 0 || fds[0].Revents == 0 {
				continue
			}
			for {
				if _, err := unix.Read(fd, buf); err != nil {
					break // drained (EAGAIN)
				}
			}
			if err := s.Sync(); err != nil {
				return err
			}
		}
		return nil
	}, nil
}
