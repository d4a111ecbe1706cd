package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"
	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/zfsroot"
)

var empty = &ptypes.Empty{}

// oomCounter is what a container may offer to say how many OOM kills its cgroup saw since
// it was created, counting the kills its OOM channel delivers too (ok false when it cannot
// tell). It is read once the init has exited, so it must still answer then.
type oomCounter interface {
	OOMCount() (uint64, bool)
}

// service implements containerd's task API v3 for every container of one shim process.
// Errors from lower layers carry errdefs sentinels and are converted to gRPC codes here,
// once, on the way out of each RPC.
type service struct {
	ctx      context.Context
	backends *backendCache
	events   *eventQueue
	exits    *runtime.ExitWatcher
	shutdown shutdown.Service

	mu    sync.Mutex
	tasks map[string]*containerTask
	// creating holds the ids whose Create is under way: taken, not yet visible. Each
	// Create works on its own id without a shim-wide lock, so a slow one (a remote
	// backend's) does not hold up the RPCs of the other tasks.
	creating map[string]bool
}

// NewTaskService makes the task service; pkg/shim registers it on the ttrpc server.
func NewTaskService(ctx context.Context, backends Registry, publisher shim.Publisher, sd shutdown.Service) (taskAPI.TTRPCTaskService, error) {
	s := &service{
		ctx:      ctx,
		backends: newBackendCache(backends),
		events:   newEventQueue(ctx, publisher),
		exits:    runtime.NewExitWatcher(),
		shutdown: sd,
		tasks:    map[string]*containerTask{},
		creating: map[string]bool{},
	}
	sd.RegisterCallback(func(context.Context) error {
		s.exits.Close()
		s.events.close()
		return nil
	})
	return s, nil
}

func (s *service) RegisterTTRPC(server *ttrpc.Server) error {
	taskAPI.RegisterTTRPCTaskService(server, s)
	return nil
}

func (s *service) get(id string) (*containerTask, error) {
	if err := validName("task id", id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return nil, fmt.Errorf("task %q: %w", id, errdefs.ErrNotFound)
	}
	return t, nil
}

// reserve takes id for a Create; publish makes the made task visible (t non-nil) or
// gives the id back.
func (s *service) reserve(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[id]; ok || s.creating[id] {
		return fmt.Errorf("task %q: %w", id, errdefs.ErrAlreadyExists)
	}
	s.creating[id] = true
	return nil
}

func (s *service) publish(id string, t *containerTask) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.creating, id)
	if t != nil {
		s.tasks[id] = t
	}
}

func (s *service) getProcess(id, execID string) (*containerTask, *proc, error) {
	t, err := s.get(id)
	if err != nil {
		return nil, nil, err
	}
	if execID != "" {
		if err := validName("exec id", execID); err != nil {
			return nil, nil, err
		}
	}
	p, err := t.process(execID)
	return t, p, err
}

// rpcDone converts an RPC's error to its gRPC code, once, on the way out, and turns a
// panic into an Internal error with its stack in the log: one broken request must not end
// the shim and with it the other tasks a grouped shim serves.
func rpcDone(ctx context.Context, rpc string, recovered any, err error) error {
	if recovered != nil {
		log.G(ctx).WithField("rpc", rpc).Errorf("panic: %v\n%s", recovered, debug.Stack())
		err = fmt.Errorf("%s: internal error: %v: %w", rpc, recovered, errdefs.ErrInternal)
	}
	return errgrpc.ToGRPC(err)
}

// recoverWatcher logs the panic of an exit watcher instead of ending the shim.
func (s *service) recoverWatcher(id, what string) {
	if r := recover(); r != nil {
		log.G(s.ctx).WithField("id", id).Errorf("panic in the %s watcher: %v\n%s", what, r, debug.Stack())
	}
}

// guarded runs a backend call of an exit watcher: a panic in it is logged and the watcher
// goes on to publish the exit, so that containerd is not left waiting for it.
func (s *service) guarded(id, what string, f func()) {
	defer s.recoverWatcher(id, what)
	f()
}

func (s *service) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (_ *taskAPI.CreateTaskResponse, retErr error) {
	defer func() { retErr = rpcDone(ctx, "Create", recover(), retErr) }()
	if err := validName("task id", r.ID); err != nil {
		return nil, err
	}
	if err := s.reserve(r.ID); err != nil {
		return nil, err
	}
	var t *containerTask
	defer func() { s.publish(r.ID, t) }()
	ns, err := requestNamespace(ctx)
	if err != nil {
		return nil, err
	}
	// The bundle holds the shim's record and rootfs mount: containerd gives an absolute
	// path of its own.
	if !filepath.IsAbs(r.Bundle) || filepath.Clean(r.Bundle) != r.Bundle {
		return nil, fmt.Errorf("bundle %q of task %q is not a clean absolute path: %w", r.Bundle, r.ID, errdefs.ErrInvalidArgument)
	}
	spec, err := readSpec(r.Bundle)
	if err != nil {
		return nil, err
	}
	if spec.Process == nil || len(spec.Process.Args) == 0 {
		return nil, fmt.Errorf("spec of task %q has no process args (process.args is empty): %w", r.ID, errdefs.ErrInvalidArgument)
	}
	cfg, err := effectiveConfig(r.ID, r.Options, spec)
	if err != nil {
		return nil, err
	}
	ctx = withTaskLog(ctx, ns, r.ID, cfg)
	backend, err := s.backends.get(ctx, cfg.Backend, cfg)
	if err != nil {
		return nil, err
	}
	needs := backend.Needs()

	stateDir, err := containerStateDir(cfg.StateDir, ns, r.ID)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(stateDir, 0o711); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	// undo runs unless Create completes, also when it panics.
	var undo []func()
	complete := false
	defer func() {
		if !complete {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	undo = append(undo, func() { os.RemoveAll(stateDir) })
	// The record goes first: a shim that dies from here on leaves what the `delete`
	// action needs to release the root filesystem (its dataset included).
	if err := writeRecord(r.Bundle, &record{Backend: cfg.Backend, StateDir: stateDir, Config: cfg.Redacted()}); err != nil {
		return nil, err
	}
	keepRecord := false
	undo = append(undo, func() {
		if !keepRecord {
			removeRecord(r.Bundle)
		}
	})

	var (
		rootfs string
		mounts []*types.Mount
		zroot  *zfsroot.Root
	)
	switch {
	case !needs.HostRootfs:
		// The backend makes the root filesystem where the container runs.
		mounts = r.Rootfs
		if r.Checkpoint != "" && !needs.OwnsCheckpoints {
			return nil, fmt.Errorf("backend %s cannot restore task %q from checkpoint %s: it keeps neither a root filesystem on this host nor checkpoints of its own: %w", cfg.Backend, r.ID, r.Checkpoint, errdefs.ErrFailedPrecondition)
		}
	case r.Checkpoint != "" && !needs.OwnsCheckpoints:
		if cfg.ZFS.Dataset == "" {
			return nil, fmt.Errorf("restoring task %q from checkpoint %s needs ZFS: configure [zfs] dataset: %w", r.ID, r.Checkpoint, errdefs.ErrFailedPrecondition)
		}
		t0 := time.Now()
		root, d, err := zfsroot.Restore(ctx, &cfg.ZFS, ns, r.ID, r.Bundle, r.Checkpoint)
		if err != nil {
			return nil, fmt.Errorf("restore task %q: %w", r.ID, err)
		}
		zroot, rootfs = root, root.Target
		if err := retargetCgroup(r.Bundle, spec, d.ContainerID, r.ID); err != nil {
			root.Release(context.WithoutCancel(ctx))
			return nil, err
		}
		log.G(ctx).WithField("id", r.ID).Infof("restored the root filesystem of %q from checkpoint %s of %s/%s in %v; %s (%s)",
			r.ID, d.Snapshot, d.Namespace, d.ContainerID, time.Since(t0), zfsroot.ProcessStateNote, d.CRIU)
	case cfg.ZFS.Dataset != "" && len(r.Rootfs) > 0:
		root, err := zfsroot.Setup(ctx, &cfg.ZFS, ns, r.ID, r.Bundle, r.Rootfs)
		if err != nil {
			return nil, err
		}
		zroot, rootfs, mounts = root, root.Target, r.Rootfs
	default:
		mounts = r.Rootfs
		rootfs, err = runtime.MountRootfs(r.Bundle, r.Rootfs)
		if err != nil {
			return nil, err
		}
		if len(r.Rootfs) > 0 {
			undo = append(undo, func() { runtime.UnmountRootfs(r.Bundle) })
		}
	}
	if zroot != nil {
		undo = append(undo, func() {
			if err := zroot.Release(context.WithoutCancel(ctx)); err != nil {
				keepRecord = true // for the `delete` action containerd runs next
				log.G(ctx).WithError(err).WithField("id", r.ID).Warn("release ZFS root filesystem")
			}
		})
	}
	stdio := runtime.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}
	pio, err := runtime.NewIO(ctx, r.ID, stdio)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { pio.Close() })

	creq := &runtime.CreateRequest{
		ID: r.ID, Namespace: ns, Bundle: r.Bundle, Rootfs: rootfs, Mounts: mounts, Spec: spec,
		StateDir: stateDir, IO: pio, Exits: s.exits, Config: cfg,
	}
	if needs.OwnsCheckpoints {
		creq.Checkpoint = r.Checkpoint
	}
	c, err := backend.Create(ctx, creq)
	if err != nil {
		return nil, err
	}
	t = newContainerTask(r.ID, r.Bundle, stateDir, cfg.Backend, c, stdio)
	t.zfs = zroot
	t.needs = needs
	t.killAllOnExit = !runtime.OwnsPIDNamespace(spec)
	complete = true

	s.events.send(&eventstypes.TaskCreate{
		ContainerID: r.ID,
		Bundle:      r.Bundle,
		Rootfs:      r.Rootfs,
		IO:          &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Checkpoint:  r.Checkpoint,
		Pid:         uint32(t.init.Pid()),
	})
	go s.watchInit(t, c.OOM())
	return &taskAPI.CreateTaskResponse{Pid: uint32(t.init.Pid())}, nil
}

// watchInit publishes OOM events while the container lives, then its init's exit once
// every exec's exit is out, OOM events first, and never before its TaskStart.
func (s *service) watchInit(t *containerTask, oom <-chan struct{}) {
	defer s.recoverWatcher(t.id, "init exit")
	var published uint64
	publishOOM := func() {
		published++
		s.events.send(&eventstypes.TaskOOM{ContainerID: t.id})
	}
	for done := false; !done; {
		select {
		case _, ok := <-oom:
			if !ok {
				oom = nil
				continue
			}
			publishOOM()
		case <-t.init.Done():
			done = true
		}
	}
	// A Start still under way publishes TaskStart first; a created task that never
	// started ran nothing else.
	if started := t.init.awaitStart(); t.killAllOnExit && started {
		s.guarded(t.id, "kill-all", func() { s.killRemaining(t) })
	}
	// The kernel signals an OOM kill before the victim is reaped; drain what is pending.
	for drained := false; oom != nil && !drained; {
		select {
		case _, ok := <-oom:
			if !ok {
				oom = nil
				continue
			}
			publishOOM()
		default:
			drained = true
		}
	}
	// The backend's count is final once the init is gone: it stands in for the events
	// still on their way and those the watch missed (a cgroup removed right after the
	// kill), so TaskOOM comes before TaskExit, once per kill, without waiting.
	if oc, ok := t.container.(oomCounter); ok {
		var n uint64
		known := false
		s.guarded(t.id, "OOM count", func() { n, known = oc.OOMCount() })
		for known && published < n {
			publishOOM()
		}
	}
	<-t.initEnded()
	e := t.init.Exit()
	if err := writeExit(t.bundle, e); err != nil {
		log.G(s.ctx).WithError(err).WithField("id", t.id).Warn("record exit status")
	}
	s.events.send(&eventstypes.TaskExit{
		ContainerID: t.id,
		ID:          t.id,
		Pid:         uint32(e.Pid),
		ExitStatus:  uint32(e.Status),
		ExitedAt:    protobuf.ToTimestamp(e.ExitedAt),
	})
	t.init.setStopped(e)
}

// killRemaining kills what the init left in the container's cgroup. Without a pid
// namespace of its own, the init's death does not end the container's other processes (the
// kernel kills a namespace's processes only when that namespace's init dies): a background
// process would outlive the task and keep its cgroup busy when Delete removes it. As
// containerd's runc shim does, everything left is killed before the init's exit is
// published, which also ends the execs that exit waits for.
func (s *service) killRemaining(t *containerTask) {
	if err := t.container.KillAll(s.ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		log.G(s.ctx).WithError(err).WithField("id", t.id).Warn("kill the processes left after the init's exit")
	}
}

// watchExec publishes an exec's exit; it starts once the exec's TaskExecStarted is out.
func (s *service) watchExec(t *containerTask, p *proc) {
	defer t.execEnded()
	defer s.recoverWatcher(t.id, "exec "+p.execID+" exit")
	<-p.Done()
	e := p.Exit()
	s.events.send(&eventstypes.TaskExit{
		ContainerID: t.id,
		ID:          p.execID,
		Pid:         uint32(e.Pid),
		ExitStatus:  uint32(e.Status),
		ExitedAt:    protobuf.ToTimestamp(e.ExitedAt),
	})
	p.setStopped(e)
}

func (s *service) Start(ctx context.Context, r *taskAPI.StartRequest) (_ *taskAPI.StartResponse, retErr error) {
	defer func() { retErr = rpcDone(ctx, "Start", recover(), retErr) }()
	t, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.ExecID == "" {
		t.ops.Lock()
		defer t.ops.Unlock()
		if err := p.beginStart(); err != nil {
			return nil, err
		}
		started := false
		defer func() { p.endStart(started) }()
		if err := t.container.Start(ctx); err != nil {
			// Still a created task: Delete must be able to force-remove it.
			return nil, err
		}
		s.events.send(&eventstypes.TaskStart{ContainerID: r.ID, Pid: uint32(p.Pid())})
		started = true
		return &taskAPI.StartResponse{Pid: uint32(p.Pid())}, nil
	}
	if st := t.init.state(); st != stateRunning {
		return nil, fmt.Errorf("start exec %q: task %q is %s, not running: %w", r.ExecID, r.ID, st, errdefs.ErrFailedPrecondition)
	}
	if err := p.beginStart(); err != nil {
		return nil, err
	}
	if err := t.execStarting(); err != nil {
		p.endStart(false)
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			// The exec never ran: drop its record and release its stdio now, or a
			// later Delete would find it "still running" for ever.
			t.execEnded()
			p.endStart(false)
			t.removeExec(r.ExecID)
			p.move("start", stateDeleted, stateCreated)
			p.Delete(context.WithoutCancel(ctx))
		}
	}()
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	s.events.send(&eventstypes.TaskExecStarted{ContainerID: r.ID, ExecID: r.ExecID, Pid: uint32(p.Pid())})
	started = true
	p.endStart(true)
	go s.watchExec(t, p)
	return &taskAPI.StartResponse{Pid: uint32(p.Pid())}, nil
}

func (s *service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (_ *taskAPI.DeleteResponse, retErr error) {
	defer func() { retErr = rpcDone(ctx, "Delete", recover(), retErr) }()
	t, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.ExecID != "" {
		if err := p.move("delete", stateDeleted, stateCreated, stateStopped); err != nil {
			return nil, err
		}
		t.removeExec(r.ExecID)
		p.Delete(ctx)
		e := p.exitStatus()
		return &taskAPI.DeleteResponse{Pid: uint32(e.Pid), ExitStatus: uint32(e.Status), ExitedAt: protobuf.ToTimestamp(e.ExitedAt)}, nil
	}

	t.ops.Lock()
	defer t.ops.Unlock()
	st := p.state()
	if st != stateCreated && st != stateStopped {
		if st == stateRunning || st == statePaused {
			return nil, fmt.Errorf("task %q is still %s: kill it first: %w", r.ID, st, errdefs.ErrFailedPrecondition)
		}
		return nil, p.invalid("delete", st)
	}
	if !t.backendDeleted {
		// A created but never started task may be deleted: the backend force-removes it.
		if err := t.container.Delete(ctx, st == stateCreated); err != nil {
			return nil, err
		}
		// TaskDelete follows TaskExit.
		select {
		case <-p.stopped:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		for _, e := range t.execList() {
			e.Delete(ctx)
		}
		p.Delete(ctx)
		if err := runtime.UnmountRootfs(t.bundle); err != nil {
			log.G(ctx).WithError(err).Warn("unmount rootfs")
		}
		t.backendDeleted = true
	}
	// A dataset that cannot go now keeps the task and its record: the next Delete (or,
	// once the shim is gone, the `delete` action) tries again.
	if t.zfs != nil {
		if err := t.zfs.Release(ctx); err != nil {
			return nil, fmt.Errorf("delete task %q: release its root filesystem's dataset (delete again to retry): %w", r.ID, err)
		}
	}
	os.RemoveAll(t.stateDir)
	removeRecord(t.bundle)
	p.move("delete", stateDeleted, stateStopped)
	s.mu.Lock()
	delete(s.tasks, r.ID)
	s.mu.Unlock()

	e := p.exitStatus()
	s.events.send(&eventstypes.TaskDelete{
		ContainerID: r.ID,
		Pid:         uint32(e.Pid),
		ExitStatus:  uint32(e.Status),
		ExitedAt:    protobuf.ToTimestamp(e.ExitedAt),
	})
	return &taskAPI.DeleteResponse{Pid: uint32(e.Pid), ExitStatus: uint32(e.Status), ExitedAt: protobuf.ToTimestamp(e.ExitedAt)}, nil
}

func (s *service) Exec(ctx context.Context, r *taskAPI.ExecProcessRequest) (_ *ptypes.Empty, retErr error) {
	defer func() { retErr = rpcDone(ctx, "Exec", recover(), retErr) }()
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if err := validName("exec id", r.ExecID); err != nil {
		return nil, err
	}
	if st := t.init.state(); st == stateStopped || st == stateDeleted {
		return nil, fmt.Errorf("task %q has exited: %w", r.ID, errdefs.ErrFailedPrecondition)
	}
	var spec specs.Process
	if r.Spec == nil || json.Unmarshal(r.Spec.Value, &spec) != nil {
		return nil, fmt.Errorf("exec %q: malformed process spec: %w", r.ExecID, errdefs.ErrInvalidArgument)
	}
	if len(spec.Args) == 0 {
		return nil, fmt.Errorf("exec %q: process has no args: %w", r.ExecID, errdefs.ErrInvalidArgument)
	}
	if err := t.reserveExec(r.ExecID); err != nil {
		return nil, err
	}
	// The exec is visible to other RPCs only once complete.
	var p *proc
	defer func() { t.addExec(r.ExecID, p) }()
	stdio := runtime.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}
	pio, err := runtime.NewIO(ctx, r.ExecID, stdio)
	if err != nil {
		return nil, err
	}
	made := false
	defer func() {
		if !made {
			pio.Close()
		}
	}()
	bp, err := t.container.Exec(ctx, &runtime.ExecRequest{ID: r.ExecID, Spec: &spec, IO: pio})
	if err != nil {
		return nil, err
	}
	made = true
	p = newProc(r.ID, r.ExecID, bp, stdio)
	s.events.send(&eventstypes.TaskExecAdded{ContainerID: r.ID, ExecID: r.ExecID})
	return empty, nil
}

func (s *service) ResizePty(ctx context.Context, r *taskAPI.ResizePtyRequest) (_ *ptypes.Empty, retErr error) {
	defer func() { retErr = rpcDone(ctx, "ResizePty", recover(), retErr) }()
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := p.ResizePty(ctx, console.WinSize{Width: uint16(r.Width), Height: uint16(r.Height)}); err != nil {
		return nil, err
	}
	return empty, nil
}

func (s *service) State(ctx context.Context, r *taskAPI.StateRequest) (_ *taskAPI.StateResponse, retErr error) {
	defer func() { retErr = rpcDone(ctx, "State", recover(), retErr) }()
	t, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	st := p.state()
	resp := &taskAPI.StateResponse{
		ID:       r.ID,
		ExecID:   r.ExecID,
		Bundle:   t.bundle,
		Pid:      uint32(p.Pid()),
		Status:   st.status(),
		Stdin:    p.stdio.Stdin,
		Stdout:   p.stdio.Stdout,
		Stderr:   p.stdio.Stderr,
		Terminal: p.stdio.Terminal,
	}
	if r.ExecID != "" {
		resp.ID = r.ExecID
	}
	if st == stateStopped || st == stateDeleted {
		e := p.exitStatus()
		resp.ExitStatus = uint32(e.Status)
		resp.ExitedAt = protobuf.ToTimestamp(e.ExitedAt)
	}
	return resp, nil
}

func (s *service) Pause(ctx context.Context, r *taskAPI.PauseRequest) (_ *ptypes.Empty, retErr error) {
	defer func() { retErr = rpcDone(ctx, "Pause", recover(), retErr) }()
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	t.ops.Lock()
	defer t.ops.Unlock()
	if err := t.init.require("pause", stateRunning); err != nil {
		return nil, err
	}
	if err := t.container.Pause(ctx); err != nil {
		return nil, err
	}
	// An init that exited meanwhile is stopped, not paused.
	if t.init.move("pause", statePaused, stateRunning) == nil {
		s.events.send(&eventstypes.TaskPaused{ContainerID: r.ID})
	}
	return empty, nil
}

func (s *service) Resume(ctx context.Context, r *taskAPI.ResumeRequest) (_ *ptypes.Empty, retErr error) {
	defer func() { retErr = rpcDone(ctx, "Resume", recover(), retErr) }()
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	t.ops.Lock()
	defer t.ops.Unlock()
	if err := t.init.require("resume", statePaused); err != nil {
		return nil, err
	}
	if err := t.container.Resume(ctx); err != nil {
		return nil, err
	}
	if t.init.move("resume", stateRunning, statePaused) == nil {
		s.events.send(&eventstypes.TaskResumed{ContainerID: r.ID})
	}
	return empty, nil
}

func (s *service) Kill(ctx context.Context, r *taskAPI.KillRequest) (_ *ptypes.Empty, retErr error) {
	defer func() { retErr = rpcDone(ctx, "Kill", recover(), retErr) }()
	t, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	sig := syscall.Signal(r.Signal)
	st := p.state()
	if r.All && r.ExecID == "" {
		if (st == stateStopped || st == stateDeleted) && len(t.execList()) == 0 {
			return nil, fmt.Errorf("task %q has already exited: %w", r.ID, errdefs.ErrNotFound)
		}
		if err := t.container.KillAll(ctx, sig); err != nil {
			return nil, err
		}
		return empty, nil
	}
	switch {
	case st == stateStopped || st == stateDeleted:
		return nil, fmt.Errorf("process %q of task %q has already exited: %w", p.name(), r.ID, errdefs.ErrNotFound)
	case st == stateCreated && r.ExecID != "":
		// An exec that never started has no process to signal; a created init does
		// (held before it runs its program).
		return nil, p.invalid("kill", st)
	}
	if err := p.Kill(ctx, sig); err != nil {
		return nil, err
	}
	return empty, nil
}

func (s *service) Pids(ctx context.Context, r *taskAPI.PidsRequest) (_ *taskAPI.PidsResponse, retErr error) {
	defer func() { retErr = rpcDone(ctx, "Pids", recover(), retErr) }()
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	pids, err := t.container.Pids(ctx)
	if err != nil {
		return nil, err
	}
	execOf := map[int]string{}
	for _, e := range t.execList() {
		if pid := e.Pid(); pid > 0 {
			execOf[pid] = e.execID
		}
	}
	resp := &taskAPI.PidsResponse{}
	for _, pid := range pids {
		pi := &task.ProcessInfo{Pid: uint32(pid)}
		if id, ok := execOf[pid]; ok {
			if a, err := typeurl.MarshalAnyToProto(&options.ProcessDetails{ExecID: id}); err == nil {
				pi.Info = a
			}
		}
		resp.Processes = append(resp.Processes, pi)
	}
	return resp, nil
}

func (s *service) CloseIO(ctx context.Context, r *taskAPI.CloseIORequest) (_ *ptypes.Empty, retErr error) {
	defer func() { retErr = rpcDone(ctx, "CloseIO", recover(), retErr) }()
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.Stdin {
		if err := p.CloseStdin(ctx); err != nil {
			return nil, err
		}
	}
	return empty, nil
}

func (s *service) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (_ *ptypes.Empty, retErr error) {
	defer func() { retErr = rpcDone(ctx, "Checkpoint", recover(), retErr) }()
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	t.ops.Lock()
	defer t.ops.Unlock()
	if st := t.init.state(); st != stateRunning && st != statePaused {
		return nil, fmt.Errorf("task %q is %s: only a running or paused task can be checkpointed: %w", r.ID, st, errdefs.ErrFailedPrecondition)
	}
	req := &runtime.CheckpointRequest{Path: r.Path}
	if r.Options != nil && r.Options.GetTypeUrl() != "" {
		v, err := typeurl.UnmarshalAny(r.Options)
		if err != nil {
			return nil, fmt.Errorf("checkpoint options: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		if o, ok := v.(*options.CheckpointOptions); ok {
			req.Exit = o.Exit
			req.WorkPath = o.WorkPath
			if o.ImagePath != "" {
				req.Path = o.ImagePath
			}
		}
	}
	if t.zfs == nil || t.needs.OwnsCheckpoints {
		if err := t.container.Checkpoint(ctx, req); err != nil {
			return nil, err
		}
	} else if err := s.checkpointZFS(ctx, t, req); err != nil {
		return nil, err
	}
	s.events.send(&eventstypes.TaskCheckpointed{ContainerID: r.ID, Checkpoint: req.Path})
	return empty, nil
}

func (s *service) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (_ *ptypes.Empty, retErr error) {
	defer func() { retErr = rpcDone(ctx, "Update", recover(), retErr) }()
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	var res specs.LinuxResources
	if r.Resources == nil || json.Unmarshal(r.Resources.Value, &res) != nil {
		return nil, fmt.Errorf("update of task %q: malformed linux resources: %w", r.ID, errdefs.ErrInvalidArgument)
	}
	if st := t.init.state(); st == stateStopped || st == stateDeleted {
		return nil, fmt.Errorf("task %q has exited: %w", r.ID, errdefs.ErrFailedPrecondition)
	}
	if err := t.container.Update(ctx, &res); err != nil {
		return nil, err
	}
	return empty, nil
}

// Wait returns once the process's TaskExit is out.
func (s *service) Wait(ctx context.Context, r *taskAPI.WaitRequest) (_ *taskAPI.WaitResponse, retErr error) {
	defer func() { retErr = rpcDone(ctx, "Wait", recover(), retErr) }()
	_, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.stopped:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	e := p.exitStatus()
	return &taskAPI.WaitResponse{ExitStatus: uint32(e.Status), ExitedAt: protobuf.ToTimestamp(e.ExitedAt)}, nil
}

func (s *service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (_ *taskAPI.StatsResponse, retErr error) {
	defer func() { retErr = rpcDone(ctx, "Stats", recover(), retErr) }()
	t, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	st, err := t.container.Stats(ctx)
	if err != nil {
		return nil, err
	}
	return &taskAPI.StatsResponse{Stats: typeurl.MarshalProto(st)}, nil
}

func (s *service) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (_ *taskAPI.ConnectResponse, retErr error) {
	defer func() { retErr = rpcDone(ctx, "Connect", recover(), retErr) }()
	var pid int
	if t, err := s.get(r.ID); err == nil {
		pid = t.init.Pid()
	}
	return &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid()), TaskPid: uint32(pid), Version: Version}, nil
}

// Shutdown ends the shim process once it serves no task; a grouped shim stays for the rest.
func (s *service) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (_ *ptypes.Empty, retErr error) {
	defer func() { retErr = rpcDone(ctx, "Shutdown", recover(), retErr) }()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tasks) > 0 || len(s.creating) > 0 {
		return empty, nil
	}
	s.shutdown.Shutdown()
	return empty, nil
}

// checkpointZFS checkpoints a container whose root filesystem is on ZFS: a snapshot and a
// descriptor (and a send stream when portable) in req.Path. The processes are not saved
// (no CRIU): with Exit the task is killed afterwards, as runc's --exit leaves it stopped.
func (s *service) checkpointZFS(ctx context.Context, t *containerTask, req *runtime.CheckpointRequest) error {
	t0 := time.Now()
	d, err := t.zfs.Checkpoint(ctx, t.backend, req.Path)
	if err != nil {
		return fmt.Errorf("checkpoint task %q: %w", t.id, err)
	}
	log.G(ctx).WithField("id", t.id).Infof("checkpoint of %q: snapshot %s in %v; %s (%s)", t.id, d.Snapshot, time.Since(t0), zfsroot.ProcessStateNote, d.CRIU)
	if !req.Exit {
		return nil
	}
	// Frozen processes die of SIGKILL only once thawed.
	if t.init.state() == statePaused {
		if err := t.container.Resume(ctx); err != nil {
			return fmt.Errorf("checkpoint task %q: thaw it to stop it after the checkpoint (exit): %w", t.id, err)
		}
		if t.init.move("resume", stateRunning, statePaused) == nil {
			s.events.send(&eventstypes.TaskResumed{ContainerID: t.id})
		}
	}
	if err := t.container.KillAll(ctx, syscall.SIGKILL); err != nil {
		return fmt.Errorf("checkpoint task %q: stop it after the checkpoint (exit): %w", t.id, err)
	}
	select {
	case <-t.init.Done():
	case <-time.After(10 * time.Second):
		return fmt.Errorf("checkpoint task %q: it did not stop within 10s of SIGKILL after the checkpoint: %w", t.id, errdefs.ErrUnavailable)
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// retargetCgroup: a container restored with its checkpoint's spec (`ctr container restore`
// restores the spec) would share the checkpointed container's cgroup. When cgroupsPath
// ends in the checkpointed container's id, that id is replaced by the new one, in spec and
// in the bundle's config.json (which CLI backends read).
func retargetCgroup(bundle string, spec *specs.Spec, from, to string) error {
	if spec.Linux == nil || from == "" || from == to {
		return nil
	}
	p := spec.Linux.CgroupsPath
	for _, sep := range []string{"/", ":"} {
		if strings.HasSuffix(p, sep+from) {
			spec.Linux.CgroupsPath = strings.TrimSuffix(p, from) + to
			b, err := json.Marshal(spec)
			if err != nil {
				return err
			}
			cfg := filepath.Join(bundle, "config.json")
			if err := os.WriteFile(cfg+".tmp", b, 0o644); err != nil {
				return fmt.Errorf("rewrite bundle config: %w", err)
			}
			return os.Rename(cfg+".tmp", cfg)
		}
	}
	return nil
}
