package lxc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/backend/lxcstart"
	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/cgroups"
)

type container struct {
	b       *backend
	id      string
	name    string
	lxcpath string
	dir     string
	bundle  string
	spec    *specs.Spec
	res     *Result
	exits   *runtime.ExitWatcher
	init    *process

	// life ends when the container is deleted (stops the OOM watch).
	life   context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	started bool // Start was called (and did not fail before the helper ran)
	cg      cgroups.Cgroup

	oom chan struct{}

	// killAllOnExit: the container has no pid namespace of its own, so the init's death
	// ends no other process; they are killed before the init's exit is recorded.
	killAllOnExit bool
}

func newContainer(b *backend, req *runtime.CreateRequest, res *Result, name, lxcpath string) *container {
	life, cancel := context.WithCancel(context.Background())
	c := &container{
		b: b, id: req.ID, name: name, lxcpath: lxcpath, dir: req.StateDir, bundle: req.Bundle,
		spec: req.Spec, res: res, exits: req.Exits, life: life, cancel: cancel,
		oom: make(chan struct{}, 64), killAllOnExit: !runtime.OwnsPIDNamespace(req.Spec),
	}
	c.init = &process{Proc: runtime.NewProc(req.ID, req.IO), c: c, init: true, pidfd: -1}
	return c
}

func (c *container) Init() runtime.Process { return c.init }

func (c *container) isStarted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

// launchInit runs `lxcri-start start` at Create: liblxc sets the container up and clones
// the init, whose pid is then known; a start-host hook of the helper holds the init
// before it runs its program until Start releases it (as runc's create and start).
func (c *container) launchInit(ctx context.Context) error {
	in := c.res.Init
	spec, err := initSpec(&in)
	if err != nil {
		c.cancel()
		return err
	}
	args := lxcstart.Args("start", c.name, c.lxcpath)
	cmd := exec.Command(c.b.s.helper, args...)
	cmd.Dir = c.dir
	if err := c.init.launch(ctx, cmd, spec, in.ConsoleSize, true); err != nil {
		c.init.waitEnd(5 * time.Second)
		c.cancel()
		return err
	}
	c.watchOOM()
	return nil
}

// Start releases the init; it returns once the init runs the OCI process (or failed to).
// The task service calls it once, for a created task.
func (c *container) Start(ctx context.Context) error {
	c.mu.Lock()
	c.started = true
	c.mu.Unlock()
	if c.init.Exited() {
		return fmt.Errorf("container %s was killed before it started: %w", c.id, errdefs.ErrFailedPrecondition)
	}
	t0 := time.Now()
	if err := c.init.release(ctx); err != nil {
		// The helper gives up too: let the init's end be recorded before the caller
		// deletes the container.
		c.init.waitEnd(5 * time.Second)
		return err
	}
	log.G(ctx).WithField("id", c.id).Debugf("lxc: init %d running after %v", c.init.Pid(), time.Since(t0))
	c.poststart(ctx)
	return nil
}

// cgroup loads the container's cgroup, which exists once the init runs.
func (c *container) cgroup() (cgroups.Cgroup, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cg != nil {
		return c.cg, nil
	}
	if c.init.Pid() == 0 {
		return nil, fmt.Errorf("container %s has no process: %w", c.id, errdefs.ErrFailedPrecondition)
	}
	cg, err := cgroups.Load("/" + c.res.CgroupPath)
	if err != nil {
		return nil, err
	}
	c.cg = cg
	return cg, nil
}

// watchOOM forwards the cgroup's OOM events to the channel OOM returned at Create.
func (c *container) watchOOM() {
	cg, err := c.cgroup()
	if err != nil {
		return
	}
	ch, err := cg.OOMEvents(c.life)
	if err != nil {
		log.L.WithError(err).WithField("id", c.id).Warn("lxc: cannot watch OOM events")
		return
	}
	go func() {
		for range ch {
			select {
			case c.oom <- struct{}{}:
			case <-c.life.Done():
				return
			}
		}
	}()
}

// OOMCount is the number of OOM kills in the container's memory cgroup since it was made:
// what the stop hook saved once the init died (liblxc removes the cgroup right after), or
// the cgroup's own count while it lives.
func (c *container) OOMCount() (uint64, bool) {
	if c.res.OOMCountFile != "" {
		if b, err := os.ReadFile(c.res.OOMCountFile); err == nil {
			n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			return n, err == nil
		}
	}
	c.mu.Lock()
	cg := c.cg
	c.mu.Unlock()
	if cg == nil {
		return 0, false
	}
	n, err := cg.OOMKilled()
	return n, err == nil
}

func (c *container) OOM() <-chan struct{} { return c.oom }

func (c *container) Exec(ctx context.Context, req *runtime.ExecRequest) (runtime.Process, error) {
	ps := req.Process()
	if ps == nil {
		return nil, fmt.Errorf("exec %s: no process spec: %w", req.ID, errdefs.ErrInvalidArgument)
	}
	if c.spec.Process != nil && c.spec.Process.NoNewPrivileges && !ps.NoNewPrivileges {
		return nil, fieldErr("process.noNewPrivileges", "the container's processes have no_new_privs (liblxc sets it for every exec'ed process too); an exec without it is not supported")
	}
	spec, err := lxcstart.ExecSpec(ps)
	if err != nil {
		return nil, err
	}
	return &process{Proc: runtime.NewProc(req.ID, req.IO), c: c, spec: ps, execSpec: spec, pidfd: -1}, nil
}

func (c *container) KillAll(ctx context.Context, sig syscall.Signal) error {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if !started {
		return c.init.Kill(ctx, sig)
	}
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	if err := cg.KillAll(ctx, sig); err != nil {
		if errdefs.IsNotFound(err) {
			return nil // the cgroup went with the last process
		}
		return err
	}
	return nil
}

func (c *container) Pause(ctx context.Context) error {
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	return cg.Freeze(ctx)
}

func (c *container) Resume(ctx context.Context) error {
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	return cg.Thaw(ctx)
}

func (c *container) Pids(ctx context.Context) ([]int, error) {
	if c.init.Pid() == 0 || c.init.Exited() {
		return nil, nil
	}
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	pids, err := cg.Pids(ctx)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	return pids, err
}

func (c *container) Stats(ctx context.Context) (typeurl.Any, error) {
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	return cg.Stats(ctx)
}

func (c *container) Update(ctx context.Context, res *specs.LinuxResources) error {
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	return cg.Update(ctx, res)
}

func (c *container) Checkpoint(ctx context.Context, req *runtime.CheckpointRequest) error {
	// The shim checkpoints a container on ZFS itself; one reaching here is not on ZFS.
	return runtime.CheckpointNeedsZFS(Name)
}

// Delete removes the container's configuration and the cgroups liblxc leaves. It never
// destroys the LXC container (that would delete the root filesystem).
func (c *container) Delete(ctx context.Context, force bool) error {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if !started && !c.init.Exited() {
		// Created, never started: the init dies of the kill that deleting it is.
		c.init.Kill(ctx, syscall.SIGKILL)
		if !c.init.waitEnd(10 * time.Second) {
			return fmt.Errorf("container %s: the held init did not end: %w", c.id, errdefs.ErrUnavailable)
		}
	} else if !c.init.Exited() {
		if !force {
			return fmt.Errorf("container %s is still running: %w", c.id, errdefs.ErrFailedPrecondition)
		}
		if err := c.KillAll(ctx, syscall.SIGKILL); err != nil {
			log.G(ctx).WithError(err).WithField("id", c.id).Warn("lxc: kill all")
		}
		select {
		case <-c.init.Done():
		case <-time.After(10 * time.Second):
			return fmt.Errorf("container %s: init did not exit within 10s of SIGKILL: %w", c.id, errdefs.ErrUnavailable)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.cancel()
	if started {
		c.poststop(ctx)
	}
	c.removeCgroups(ctx)
	removeFiles(c.dir)
	return nil
}

// removeCgroups removes anything left of the container's and monitor's cgroups when the
// monitor could not clean up. The monitors' shared parent and its lxc.pivot stay: every
// container's monitor is created under them, and removing them while they are briefly
// empty makes a concurrent start fail ("Failed to create monitor cgroup").
func (c *container) removeCgroups(ctx context.Context) {
	for _, p := range []string{c.res.CgroupPath, c.res.MonitorCgroupPath} {
		if err := removeCgroupTree(p); err != nil {
			log.G(ctx).WithError(err).WithField("id", c.id).Warn("lxc: remove cgroup")
		}
	}
}

// state is the OCI state passed to host-side hooks.
func (c *container) state(status string) []byte {
	return HookState(c.id, c.bundle, status, c.init.Pid(), c.spec.Annotations)
}

func (c *container) poststart(ctx context.Context) {
	for i, h := range c.res.Poststart {
		if err := c.runHook(ctx, h, c.state("running")); err != nil {
			log.G(ctx).WithError(err).WithField("id", c.id).Warnf("lxc: poststart hook %d (%s) failed", i, h.Path)
		}
	}
}

func (c *container) poststop(ctx context.Context) {
	for i, h := range c.res.Poststop {
		if err := c.runHook(ctx, h, c.state("stopped")); err != nil {
			log.G(ctx).WithError(err).WithField("id", c.id).Warnf("lxc: poststop hook %d (%s) failed", i, h.Path)
		}
	}
}

// killRemainingTimeout bounds the wait for the processes the init left to die of SIGKILL.
const killRemainingTimeout = 10 * time.Second

// killRemaining kills what the dead init left in the container's cgroup and waits until
// it is gone. A cgroup liblxc already removed had nothing left in it.
func (c *container) killRemaining() {
	c.mu.Lock()
	cg := c.cg
	c.mu.Unlock()
	if cg == nil {
		var err error
		if cg, err = cgroups.Load("/" + c.res.CgroupPath); err != nil {
			return
		}
	}
	if err := cgroups.KillAllWait(context.Background(), cg, killRemainingTimeout); err != nil {
		log.L.WithError(err).WithField("id", c.id).Warn("lxc: kill the processes left after the init's exit")
	}
}
