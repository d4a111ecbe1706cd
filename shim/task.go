package shim

import (
	"fmt"
	"sync"

	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/zfsroot"
)

// proc is the service's record of one process: the backend's process plus the status that
// the task API reports and guards transitions with.
type proc struct {
	runtime.Process
	execID string
	stdio  runtime.Stdio

	mu      sync.Mutex
	started bool
}

func (p *proc) markStarted() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		return fmt.Errorf("process %q already started: %w", p.name(), errdefs.ErrFailedPrecondition)
	}
	p.started = true
	return nil
}

// unmarkStarted undoes markStarted after a start that failed.
func (p *proc) unmarkStarted() {
	p.mu.Lock()
	p.started = false
	p.mu.Unlock()
}

func (p *proc) wasStarted() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started
}

func (p *proc) exited() bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

func (p *proc) name() string {
	if p.execID == "" {
		return "init"
	}
	return p.execID
}

// status is what State reports: created until started, running until it exits, paused
// while its container is frozen, then stopped.
func (p *proc) status(paused bool) task.Status {
	switch {
	case p.exited():
		return task.Status_STOPPED
	case !p.wasStarted():
		return task.Status_CREATED
	case paused:
		return task.Status_PAUSED
	default:
		return task.Status_RUNNING
	}
}

// containerTask is one container of the shim with its init and exec processes.
type containerTask struct {
	id        string
	bundle    string
	stateDir  string
	backend   string
	container runtime.Container
	init      *proc
	// zfs is the container's ZFS root filesystem, nil without [zfs].
	zfs *zfsroot.Root
	// killAllOnExit: the container shares a pid namespace, so its init's exit leaves the
	// other processes running; see service.killRemaining.
	killAllOnExit bool
	// backendDeleted: Delete removed the container from its backend (and may yet have to
	// release its dataset).
	backendDeleted bool

	mu      sync.Mutex
	execs   map[string]*proc
	paused  bool
	running int           // started execs whose exit is not yet published
	drained chan struct{} // closed once the init exited and no exec runs
	initEnd bool
}

func newContainerTask(id, bundle, stateDir, backend string, c runtime.Container, stdio runtime.Stdio) *containerTask {
	return &containerTask{
		id:        id,
		bundle:    bundle,
		stateDir:  stateDir,
		backend:   backend,
		container: c,
		init:      &proc{Process: c.Init(), stdio: stdio},
		execs:     map[string]*proc{},
		drained:   make(chan struct{}),
	}
}

// process finds the init ("") or an exec.
func (t *containerTask) process(execID string) (*proc, error) {
	if execID == "" {
		return t.init, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.execs[execID]
	if !ok {
		return nil, fmt.Errorf("exec %q of task %q: %w", execID, t.id, errdefs.ErrNotFound)
	}
	return p, nil
}

func (t *containerTask) isPaused() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.paused
}

func (t *containerTask) setPaused(v bool) {
	t.mu.Lock()
	t.paused = v
	t.mu.Unlock()
}

// addExec reserves an exec id.
func (t *containerTask) addExec(p *proc) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.execs[p.execID]; ok {
		return fmt.Errorf("exec %q of task %q: %w", p.execID, t.id, errdefs.ErrAlreadyExists)
	}
	t.execs[p.execID] = p
	return nil
}

func (t *containerTask) removeExec(id string) {
	t.mu.Lock()
	delete(t.execs, id)
	t.mu.Unlock()
}

// execStarting counts a starting exec, refused once the init has exited: the init's exit
// is published only after every exec's exit.
func (t *containerTask) execStarting() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.initEnd {
		return fmt.Errorf("task %q has exited: %w", t.id, errdefs.ErrFailedPrecondition)
	}
	t.running++
	return nil
}

func (t *containerTask) execEnded() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running--
	if t.initEnd && t.running == 0 {
		close(t.drained)
	}
}

// initEnded marks the init's exit and returns a channel closed when no exec runs.
func (t *containerTask) initEnded() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.initEnd = true
	if t.running == 0 {
		close(t.drained)
	}
	return t.drained
}

func (t *containerTask) execList() []*proc {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := make([]*proc, 0, len(t.execs))
	for _, p := range t.execs {
		l = append(l, p)
	}
	return l
}
