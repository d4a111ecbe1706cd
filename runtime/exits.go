package runtime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// maxUnclaimed bounds the exits of adopted orphans kept for a later Wait.
const maxUnclaimed = 1024

// ExitWatcher hands out the exit status of the shim's children: processes it started, and
// orphans reparented to it (the shim is a child subreaper), such as the init a runtime CLI
// leaves behind. Status is the exit code, or 128+signal.
//
// The shim runs without containerd's catch-all reaper (pkg/shim's NoReaper): a reaper that
// reaps every child steals the exit of processes that libraries start and wait for through
// os/exec (go-zfs, cp, a runtime CLI), which then fail with "waitid: no child processes".
// Instead:
//   - a process someone waits for (Start, Wait) is waited for by pid, through a pidfd;
//   - on SIGCHLD, zombie children that no pidfd of this process refers to are reaped:
//     os/exec holds a pidfd for every child it starts, so those are left to it, while
//     orphans nobody waits for do not pile up as zombies. Their status is kept, so a Wait
//     that comes later (a pid learned from a pid file) still gets it.
type ExitWatcher struct {
	mu        sync.Mutex
	unclaimed map[int]int
	order     []int
	sigs      chan os.Signal
}

// NewExitWatcher starts the watcher of this shim process. Close stops it.
func NewExitWatcher() *ExitWatcher {
	w := &ExitWatcher{unclaimed: map[int]int{}, sigs: make(chan os.Signal, 32)}
	// Without pidfds (kernels before 5.3) os/exec holds none, and the sweep could not
	// tell its children from orphans: leave orphans to be zombies rather than steal.
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		log.L.WithError(err).Warn("no pidfd support: orphaned processes are not reaped")
		return w
	}
	unix.Close(fd)
	signal.Notify(w.sigs, unix.SIGCHLD)
	go func() {
		for range w.sigs {
			w.reapOrphans()
		}
	}()
	return w
}

// Wait returns a channel that receives pid's exit status. pid must be a child of the shim:
// started by it, or reparented to it.
func (w *ExitWatcher) Wait(pid int) <-chan int {
	ch := make(chan int, 1)
	w.mu.Lock()
	if st, ok := w.unclaimed[pid]; ok {
		delete(w.unclaimed, pid)
		w.mu.Unlock()
		ch <- st
		return ch
	}
	// Holding the lock while the pidfd is opened: from now on the sweep leaves pid alone.
	p, err := os.FindProcess(pid)
	w.mu.Unlock()
	go func() {
		if err == nil {
			var st *os.ProcessState
			if st, err = p.Wait(); err == nil {
				ch <- exitStatus(st)
				return
			}
		}
		log.L.WithError(err).WithField("pid", pid).Warn("cannot wait for process; reporting it killed")
		ch <- 128 + int(syscall.SIGKILL)
	}()
	return ch
}

// Start starts cmd and returns a channel for its exit status.
func (w *ExitWatcher) Start(cmd *exec.Cmd) (<-chan int, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	ch := make(chan int, 1)
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) && cmd.ProcessState == nil {
			log.L.WithError(err).WithField("pid", cmd.Process.Pid).Warn("wait for process")
			ch <- 128 + int(syscall.SIGKILL)
			return
		}
		ch <- exitStatus(cmd.ProcessState)
	}()
	return ch, nil
}

// Run starts cmd, waits for it and returns its exit status.
func (w *ExitWatcher) Run(cmd *exec.Cmd) (int, error) {
	ch, err := w.Start(cmd)
	if err != nil {
		return -1, err
	}
	return <-ch, nil
}

// Close stops the watcher.
func (w *ExitWatcher) Close() {
	signal.Stop(w.sigs)
	close(w.sigs)
}

// reapOrphans reaps the zombie children that no pidfd of this process refers to.
func (w *ExitWatcher) reapOrphans() {
	w.mu.Lock()
	defer w.mu.Unlock()
	zombies := zombieChildren()
	if len(zombies) == 0 {
		return
	}
	owned := pidfdTargets()
	for _, pid := range zombies {
		if owned[pid] {
			continue
		}
		var ws unix.WaitStatus
		if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err != nil || got != pid {
			continue
		}
		st := ws.ExitStatus()
		if ws.Signaled() {
			st = 128 + int(ws.Signal())
		}
		if len(w.order) >= maxUnclaimed {
			delete(w.unclaimed, w.order[0])
			w.order = w.order[1:]
		}
		w.unclaimed[pid] = st
		w.order = append(w.order, pid)
	}
}

// zombieChildren lists this process's children that have exited and not been reaped.
func zombieChildren() []int {
	var out []int
	files, _ := filepath.Glob("/proc/self/task/*/children")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(s)
			if err != nil {
				continue
			}
			stat, err := os.ReadFile("/proc/" + s + "/stat")
			if err != nil {
				continue
			}
			// pid (comm) state ...: comm may hold spaces and parentheses.
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				out = append(out, pid)
			}
		}
	}
	return out
}

// pidfdTargets lists the pids this process holds a pidfd for (os/exec's children, and
// the processes Wait waits for).
func pidfdTargets() map[int]bool {
	out := map[int]bool{}
	files, _ := filepath.Glob("/proc/self/fdinfo/*")
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		s := bufio.NewScanner(fh)
		for s.Scan() {
			if v, ok := strings.CutPrefix(s.Text(), "Pid:"); ok {
				if pid, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
					out[pid] = true
				}
			}
		}
		fh.Close()
	}
	return out
}

func exitStatus(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}
