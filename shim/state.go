package shim

import (
	"fmt"
	"sync"

	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/runtime"
)

// state is where a process is in its life. The task service keeps one per process and
// checks every transition here, so backends need no started/exited guards of their own:
//
//	created ──start──▶ running ◀──resume/pause──▶ paused (init only)
//	   │                  │                          │
//	   └───────exit───────┴──────────exit────────────┘
//	                      ▼
//	                   stopped ──delete──▶ deleted
//
// A created process may also be deleted directly. "Exit" here is the moment the process's
// TaskExit is published, not the moment the backend saw it end: what State, Wait and Delete
// report never runs ahead of the events containerd receives.
type state int

const (
	stateCreated state = iota
	stateRunning
	statePaused
	stateStopped
	stateDeleted
)

func (s state) String() string {
	switch s {
	case stateCreated:
		return "created"
	case stateRunning:
		return "running"
	case statePaused:
		return "paused"
	case stateStopped:
		return "stopped"
	case stateDeleted:
		return "deleted"
	}
	return "unknown"
}

// status is the task API's name for the state.
func (s state) status() task.Status {
	switch s {
	case stateCreated:
		return task.Status_CREATED
	case stateRunning:
		return task.Status_RUNNING
	case statePaused:
		return task.Status_PAUSED
	default:
		return task.Status_STOPPED
	}
}

// proc is the service's record of one process: the backend's process, its stdio as
// containerd named it, and its state.
type proc struct {
	runtime.Process
	taskID string
	execID string
	stdio  runtime.Stdio

	mu       sync.Mutex
	settled  *sync.Cond // signalled when a Start ends
	st       state
	starting bool // a Start is under way
	exit     runtime.Exit
	stopped  chan struct{} // closed once the process's TaskExit is out
}

func newProc(taskID, execID string, p runtime.Process, stdio runtime.Stdio) *proc {
	pr := &proc{Process: p, taskID: taskID, execID: execID, stdio: stdio, stopped: make(chan struct{})}
	pr.settled = sync.NewCond(&pr.mu)
	return pr
}

func (p *proc) name() string {
	if p.execID == "" {
		return "init"
	}
	return p.execID
}

func (p *proc) state() state {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// invalid is the error for op on a process in state st: NotFound once the process is
// deleted (or, for a signal, once it exited, as containerd's runc shim answers),
// FailedPrecondition otherwise.
func (p *proc) invalid(op string, st state) error {
	if st == stateDeleted {
		return fmt.Errorf("%s: process %q of task %q was deleted: %w", op, p.name(), p.taskID, errdefs.ErrNotFound)
	}
	return fmt.Errorf("%s: process %q of task %q is %s: %w", op, p.name(), p.taskID, st, errdefs.ErrFailedPrecondition)
}

// beginStart moves a created process into a start; endStart finishes it.
func (p *proc) beginStart() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st != stateCreated {
		return p.invalid("start", p.st)
	}
	if p.starting {
		return fmt.Errorf("start: process %q of task %q is being started: %w", p.name(), p.taskID, errdefs.ErrFailedPrecondition)
	}
	p.starting = true
	return nil
}

// endStart ends a start; ok tells whether the process now runs (and its start event is
// out). The exit watcher waits for it, so that TaskExit never precedes TaskStart.
func (p *proc) endStart(ok bool) {
	p.mu.Lock()
	p.starting = false
	if ok && p.st == stateCreated {
		p.st = stateRunning
	}
	p.settled.Broadcast()
	p.mu.Unlock()
}

// awaitStart waits until no start is under way and reports whether the process was
// started.
func (p *proc) awaitStart() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.starting {
		p.settled.Wait()
	}
	return p.st != stateCreated
}

// move changes the state from one of from to to, or says why it cannot. A process
// deleted before it ran releases its waiters too.
func (p *proc) move(op string, to state, from ...state) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range from {
		if p.st == f {
			if to == stateDeleted && p.st == stateCreated {
				close(p.stopped)
			}
			p.st = to
			return nil
		}
	}
	return p.invalid(op, p.st)
}

// require checks that the process is in one of states.
func (p *proc) require(op string, states ...state) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range states {
		if p.st == s {
			return nil
		}
	}
	return p.invalid(op, p.st)
}

// setStopped records the exit once its TaskExit is published.
func (p *proc) setStopped(e runtime.Exit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st == stateStopped || p.st == stateDeleted {
		return
	}
	p.st = stateStopped
	p.exit = e
	close(p.stopped)
}

// exitStatus is the exit as published; valid once stopped is closed.
func (p *proc) exitStatus() runtime.Exit {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit
}
