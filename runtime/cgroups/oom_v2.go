package cgroups

import (
	"context"
	"os"
	"path/filepath"
	"strings"
)

// OOMEvents watches memory.events and cgroup.events with inotify (cgroup2's MemoryEventFD)
// and turns each change of memory.events' oom_kill count into values. The kernel counts a
// kill before it notifies, so no settling is needed. The watch ends once the cgroup has no
// process left, as containerd's EventChan does: a cgroup cannot be removed before it is
// empty, and inotify does not report the removal of cgroupfs files.
//
// The library's EventChan is not used because it cannot be stopped: its goroutine would
// block for ever on its channel once ctx ends.
func (c *v2) OOMEvents(ctx context.Context) (<-chan struct{}, error) {
	if c.gone() {
		return nil, goneErr(c.group, "oom events")
	}
	ifd, _, err := c.m.MemoryEventFD()
	if err != nil {
		return nil, c.fail("oom events", err)
	}
	f, err := pollableFile(ifd, "oom-inotify")
	if err != nil {
		return nil, wrapErr(c.group, "oom events", err)
	}
	p := newOOMPump(ctx, c.OOMKilled)
	go func() {
		defer close(p.ch)
		defer f.Close()
		defer interruptOnDone(ctx, f)()
		if _, ok := p.catchUp(); !ok {
			return
		}
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			// Emptiness first: once empty, every kill has been counted, so the final
			// catchUp below sees them all.
			empty := c.empty()
			if _, ok := p.catchUp(); (!ok && (c.gone() || ctx.Err() != nil)) || empty {
				return
			}
			// A failed read of a cgroup that still exists is transient (a file read
			// while being rewritten): the next notification catches up.
		}
	}()
	return p.ch, nil
}

// empty reads cgroup.events as containerd's EventChan does (the library does not export
// it): true once no process is left in the cgroup's subtree, or the cgroup is gone.
func (c *v2) empty() bool {
	b, err := os.ReadFile(filepath.Join(c.dir, "cgroup.events"))
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "populated "); ok {
			return strings.TrimSpace(v) == "0"
		}
	}
	return true
}
