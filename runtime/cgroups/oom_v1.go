package cgroups

import (
	"context"
	"fmt"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/errdefs"
)

// OOMEvents registers an eventfd on memory.oom_control (cgroup1's OOMEventFD, as containerd's
// pkg/oom/v1 does). The kernel signals it on each OOM of the cgroup and once more when the
// cgroup is removed; each wake-up is turned into oom_kill counter increments.
func (c *v1) OOMEvents(ctx context.Context) (<-chan struct{}, error) {
	if c.mem == nil {
		return nil, fmt.Errorf("cgroup %s: oom events: no memory cgroup: %w", c.name, errdefs.ErrNotImplemented)
	}
	efd, err := c.mem.OOMEventFD()
	if err != nil {
		return nil, c.fail("oom events", err)
	}
	f, err := pollableFile(int(efd), "oom-eventfd")
	if err != nil {
		return nil, wrapErr(c.name, "oom events", err)
	}
	p := newOOMPump(ctx, c.OOMKilled)
	go func() {
		defer close(p.ch)
		defer f.Close()
		defer interruptOnDone(ctx, f)()
		if _, ok := p.catchUp(); !ok {
			return
		}
		buf := make([]byte, 8)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			if !p.settle() {
				return
			}
			if c.mem.State() == cgroup1.Deleted {
				return
			}
		}
	}()
	return p.ch, nil
}
