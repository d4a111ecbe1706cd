package lxcstart

import (
	"sync"

	"github.com/containerd/console"
)

// PendingSize keeps the window size a client asks for an exec'ed process's terminal
// before the shim has it: the helper's exec mode makes the pty in the container once the
// process starts, and a client may resize it before (containerd's exec -t does, right
// after Start). The zero value has no terminal attached and no size kept.
type PendingSize struct {
	mu       sync.Mutex
	attached bool
	size     *console.WinSize
}

// Keep records ws for the terminal to come, and says so; false when the terminal is
// attached already (resize it then).
func (s *PendingSize) Keep(ws console.WinSize) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attached {
		return false
	}
	s.size = &ws
	return true
}

// Size is the size kept so far, nil when none was asked.
func (s *PendingSize) Size() *console.WinSize {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// Attached records that the terminal is attached, from now on resized directly, and
// returns the size kept until then (nil when none), which it forgets.
func (s *PendingSize) Attached() *console.WinSize {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attached = true
	ws := s.size
	s.size = nil
	return ws
}
