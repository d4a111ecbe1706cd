package runtime

import (
	"fmt"
	"os/exec"
	"sync"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	runc "github.com/containerd/go-runc"
)

// maxUnclaimed bounds the exits kept for pids nobody asked about yet.
const maxUnclaimed = 1024

// ExitWatcher hands the exit status of the shim's children (and, the shim being a child
// subreaper, of orphaned descendants such as a container's init) to whoever waits for
// that pid. containerd's reaper reaps every child, so os/exec's Wait must not be used.
//
// A process may exit before its starter learns its pid (runc create returns after the
// init started; LXC reports the init pid later). The watcher therefore keeps exits nobody
// claimed yet, for a bounded number of pids, and a later Wait(pid) gets them at once.
type ExitWatcher struct {
	mu        sync.Mutex
	waiters   map[int][]chan int
	unclaimed map[int]int
	order     []int
	sub       chan runc.Exit
}

// NewExitWatcher subscribes to the reaper. Close unsubscribes.
func NewExitWatcher() *ExitWatcher {
	w := &ExitWatcher{
		waiters:   map[int][]chan int{},
		unclaimed: map[int]int{},
		sub:       reaper.Default.Subscribe(),
	}
	go w.run()
	return w
}

func (w *ExitWatcher) run() {
	for e := range w.sub {
		w.deliver(e.Pid, e.Status)
	}
}

func (w *ExitWatcher) deliver(pid, status int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if chs, ok := w.waiters[pid]; ok {
		delete(w.waiters, pid)
		for _, ch := range chs {
			ch <- status
		}
		return
	}
	if len(w.order) >= maxUnclaimed {
		delete(w.unclaimed, w.order[0])
		w.order = w.order[1:]
	}
	w.unclaimed[pid] = status
	w.order = append(w.order, pid)
}

// Wait returns a channel that receives pid's exit status (exit code, or 128+signal).
// The pid must be one the caller knows is (or was) a child or descendant of the shim,
// learned no earlier than it was started.
func (w *ExitWatcher) Wait(pid int) <-chan int {
	ch := make(chan int, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if status, ok := w.unclaimed[pid]; ok {
		delete(w.unclaimed, pid)
		for i, p := range w.order {
			if p == pid {
				w.order = append(w.order[:i], w.order[i+1:]...)
				break
			}
		}
		ch <- status
		return ch
	}
	w.waiters[pid] = append(w.waiters[pid], ch)
	return ch
}

// Forget drops a stale record of pid, before a new process may get the same pid.
func (w *ExitWatcher) Forget(pid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.unclaimed, pid)
}

// Start starts cmd and returns a channel for its exit status.
func (w *ExitWatcher) Start(cmd *exec.Cmd) (<-chan int, error) {
	// An exit that arrives before Wait registers lands in unclaimed and is found there.
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	return w.Wait(cmd.Process.Pid), nil
}

// Run starts cmd, waits for it and returns its exit status.
func (w *ExitWatcher) Run(cmd *exec.Cmd) (int, error) {
	ch, err := w.Start(cmd)
	if err != nil {
		return -1, err
	}
	return <-ch, nil
}

// Close unsubscribes from the reaper.
func (w *ExitWatcher) Close() {
	reaper.Default.Unsubscribe(w.sub)
}
