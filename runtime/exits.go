package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/containerd/log"
)

// ExitWatcher hands out the exit status of the shim's children: processes it started, and
// orphans reparented to it (the shim is a child subreaper), such as the init a runtime CLI
// leaves behind. Status is the exit code, or 128+signal.
//
// The shim runs without containerd's catch-all reaper (pkg/shim's NoReaper): a reaper that
// reaps every child steals the exit of processes that libraries start and wait for through
// os/exec (go-zfs, cp, a runtime CLI), which then fail with "waitid: no child processes".
// Here each process is waited for by pid, by whoever started or adopted it. A process that
// exits before anyone waits stays a zombie holding its status until it is waited for, so
// an early exit is never lost.
type ExitWatcher struct{}

// NewExitWatcher returns the watcher of this shim process.
func NewExitWatcher() *ExitWatcher { return &ExitWatcher{} }

// Wait returns a channel that receives pid's exit status. pid must be a child of the shim:
// started by it, or reparented to it.
func (w *ExitWatcher) Wait(pid int) <-chan int {
	ch := make(chan int, 1)
	go func() {
		p, err := os.FindProcess(pid)
		if err == nil {
			var st *os.ProcessState
			if st, err = p.Wait(); err == nil {
				ch <- exitStatus(st)
				return
			}
		}
		// Not our child (or reaped by someone else): the exit status is unknowable.
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

// Close releases the watcher.
func (w *ExitWatcher) Close() {}

func exitStatus(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}
