package shim

import (
	"fmt"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/zfsroot"
)

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
	// needs is what the container's backend asks of the shim.
	needs runtime.Needs
	// killAllOnExit: the container shares a pid namespace, so its init's exit leaves the
	// other processes running; see service.killRemaining.
	killAllOnExit bool
	// backendDeleted: Delete removed the container from its backend (and may yet have to
	// release its dataset).
	backendDeleted bool

	// ops serialises the RPCs that change the container as a whole (start of the init,
	// pause, resume, checkpoint, delete): each checks the init's state, asks the backend,
	// then records the new state, and two of them interleaved would record a lie.
	ops sync.Mutex

	mu       sync.Mutex
	execs    map[string]*proc // complete execs, visible to every RPC
	reserved map[string]bool  // exec ids whose Exec is under way
	running  int              // started execs whose exit is not yet published
	drained  chan struct{}    // closed once the init exited and no exec runs
	initEnd  bool
}

func newContainerTask(id, bundle, stateDir, backend string, c runtime.Container, stdio runtime.Stdio) *containerTask {
	return &containerTask{
		id:        id,
		bundle:    bundle,
		stateDir:  stateDir,
		backend:   backend,
		container: c,
		init:      newProc(id, "", c.Init(), stdio),
		execs:     map[string]*proc{},
		reserved:  map[string]bool{},
		drained:   make(chan struct{}),
	}
}

// process finds the init ("") or a complete exec.
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

// reserveExec claims an exec id while its Exec is under way; the exec becomes visible
// only with addExec, so no other RPC sees it half made.
func (t *containerTask) reserveExec(id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.execs[id]; ok || t.reserved[id] {
		return fmt.Errorf("exec %q of task %q: %w", id, t.id, errdefs.ErrAlreadyExists)
	}
	t.reserved[id] = true
	return nil
}

// addExec publishes a complete exec (p non-nil) or releases the reservation.
func (t *containerTask) addExec(id string, p *proc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.reserved, id)
	if p != nil {
		t.execs[id] = p
	}
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
