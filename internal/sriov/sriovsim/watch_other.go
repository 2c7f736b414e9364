//go:build !linux

package sriovsim

import "context"

// watch polls: inotify is Linux only.
func (s *Sim) watch() (func(context.Context) error, error) {
	if err := s.Sync(); err != nil {
		return nil, err
	}
	return s.pollLoop, nil
}
