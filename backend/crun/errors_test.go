package crun

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// TestKillError: the CLI's words for a container that is gone (runc and crun spell them
// differently) make Kill NotFound, as with containerd's runc shim; other failures stay
// what they were.
func TestKillError(t *testing.T) {
	for _, tc := range []struct {
		msg      string
		notFound bool
	}{
		{"kill: container does not exist: exit status 1", true},                   // runc, deleted
		{"kill: container `x` does not exist: exit status 1", true},               // crun, deleted
		{"kill: container not running: exit status 1", true},                      // runc, init gone
		{"kill: os: process already finished", true},                              // exited meanwhile
		{"kill: no such process: exit status 1", true},                            // crun, init gone
		{"kill: invalid signal: exit status 1", false},                            // a real failure
		{"kill: open /run/x/state.json: permission denied: exit status 1", false}, // a real failure
	} {
		err := killError(errors.New(tc.msg))
		if got := errdefs.IsNotFound(err); got != tc.notFound {
			t.Errorf("killError(%q) = %v: NotFound %v, want %v", tc.msg, err, got, tc.notFound)
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("killError(%q) = %q: lost the CLI's message", tc.msg, err)
		}
	}
}
