package cgroups

import (
	"context"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// oomSettle bounds how long a wake-up waits for the oom_kill counter to move: cgroup v1
	// notifies when the cgroup runs out of memory, just before the killer picks a victim.
	oomSettle = 2 * time.Second
	// oomPoll is how often the counter is read while settling.
	oomPoll = 5 * time.Millisecond
	// oomBuffer lets a burst of kills be queued without blocking the watcher.
	oomBuffer = 16
)

// oomPump turns kernel wake-ups into one channel value per counted OOM kill.
type oomPump struct {
	ctx context.Context
	ch  chan struct{}
	// count reads the cgroup's oom_kill counter.
	count func() (uint64, error)
	// sent is how many kills were delivered; the counter starts at zero with the cgroup.
	sent uint64
}

func newOOMPump(ctx context.Context, count func() (uint64, error)) *oomPump {
	return &oomPump{ctx: ctx, ch: make(chan struct{}, oomBuffer), count: count}
}

// catchUp delivers a value for each kill counted since the last call. It returns the
// number delivered, and false when the watch must end (cgroup unreadable or ctx done).
func (p *oomPump) catchUp() (int, bool) {
	n, err := p.count()
	if err != nil {
		return 0, false
	}
	delivered := 0
	for ; p.sent < n; p.sent++ {
		select {
		case p.ch <- struct{}{}:
			delivered++
		case <-p.ctx.Done():
			return delivered, false
		}
	}
	return delivered, true
}

// settle is catchUp after a wake-up whose kill may not be counted yet: it polls until the
// counter moves, for at most oomSettle.
func (p *oomPump) settle() bool {
	deadline := time.Now().Add(oomSettle)
	for {
		delivered, ok := p.catchUp()
		if !ok || delivered > 0 || time.Now().After(deadline) {
			return ok
		}
		select {
		case <-time.After(oomPoll):
		case <-p.ctx.Done():
			return false
		}
	}
}

// pollableFile wraps a kernel notification fd (eventfd, inotify) so reads park the
// goroutine in Go's poller instead of a thread, and can be interrupted when ctx ends.
func pollableFile(fd int, name string) (*os.File, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// interruptOnDone makes a pending or later read of f fail once ctx ends.
func interruptOnDone(ctx context.Context, f *os.File) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		_ = f.SetReadDeadline(time.Now())
	})
}
