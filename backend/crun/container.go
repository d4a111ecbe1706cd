package crun

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/cgroups"
)

type container struct {
	id       string
	bundle   string
	stateDir string
	cli      *runc.Runc
	exits    *runtime.ExitWatcher
	init     *process
	// killAllOnExit: the init's exit is recorded only once every other process of the
	// container is gone (see process.waitExit).
	killAllOnExit bool

	mu sync.Mutex
	cg cgroups.Cgroup
}

// create runs `<cli> create`, which leaves the init process waiting for start.
func (c *container) create(ctx context.Context, io *runtime.IO) error {
	pidFile := filepath.Join(c.stateDir, "init.pid")
	opts := &runc.CreateOpts{PidFile: pidFile, IO: io.RuncIO()}
	var socket *runc.Socket
	if io.Terminal() {
		s, err := runc.NewTempConsoleSocket()
		if err != nil {
			return fmt.Errorf("console socket: %w", err)
		}
		defer s.Close()
		socket, opts.ConsoleSocket = s, s
	}
	if err := c.cli.Create(ctx, c.id, c.bundle, opts); err != nil {
		return cliError(err, filepath.Base(c.cli.Command)+" create", c.cli.Log)
	}
	if socket != nil {
		con, err := socket.ReceiveMaster()
		if err != nil {
			c.cli.Delete(ctx, c.id, &runc.DeleteOpts{Force: true})
			return fmt.Errorf("receive pty master: %w", err)
		}
		if err := io.AttachConsole(ctx, con); err != nil {
			c.cli.Delete(ctx, c.id, &runc.DeleteOpts{Force: true})
			return err
		}
	}
	pid, err := runc.ReadPidFile(pidFile)
	if err != nil {
		c.cli.Delete(ctx, c.id, &runc.DeleteOpts{Force: true})
		return fmt.Errorf("read init pid: %w", err)
	}
	c.init = &process{Proc: runtime.NewProc(c.id, io), c: c, init: true}
	c.init.SetPid(pid)
	if c.killAllOnExit {
		// Found through the init's pid, which is gone once it exits.
		if _, err := c.cgroup(); err != nil {
			log.G(ctx).WithError(err).WithField("id", c.id).Warn("crun: load the container's cgroup")
		}
	}
	go c.init.waitExit(c.exits.Wait(pid))
	return nil
}

func (c *container) Init() runtime.Process { return c.init }

func (c *container) Start(ctx context.Context) error {
	if err := c.cli.Start(ctx, c.id); err != nil {
		return cliError(err, filepath.Base(c.cli.Command)+" start", c.cli.Log)
	}
	return nil
}

func (c *container) Exec(ctx context.Context, req *runtime.ExecRequest) (runtime.Process, error) {
	ps := req.Process()
	if ps == nil {
		return nil, fmt.Errorf("exec %s: no process spec: %w", req.ID, errdefs.ErrInvalidArgument)
	}
	return &process{Proc: runtime.NewProc(req.ID, req.IO), c: c, spec: ps}, nil
}

func (c *container) KillAll(ctx context.Context, sig syscall.Signal) error {
	if err := c.cli.Kill(ctx, c.id, int(sig), &runc.KillOpts{All: true}); err != nil {
		return cliError(err, "kill --all", c.cli.Log)
	}
	return nil
}

func (c *container) Pause(ctx context.Context) error {
	if err := c.cli.Pause(ctx, c.id); err != nil {
		return cliError(err, "pause", c.cli.Log)
	}
	return nil
}

func (c *container) Resume(ctx context.Context) error {
	if err := c.cli.Resume(ctx, c.id); err != nil {
		return cliError(err, "resume", c.cli.Log)
	}
	return nil
}

func (c *container) Pids(ctx context.Context) ([]int, error) {
	pids, err := c.cli.Ps(ctx, c.id)
	if err != nil {
		return nil, cliError(err, "ps", c.cli.Log)
	}
	return pids, nil
}

// cgroup loads the init's cgroup once; the CLI placed it where cgroupsPath says.
func (c *container) cgroup() (cgroups.Cgroup, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cg != nil {
		return c.cg, nil
	}
	if c.init.Exited() {
		return nil, fmt.Errorf("container %s is not running: %w", c.id, errdefs.ErrFailedPrecondition)
	}
	cg, err := cgroups.LoadByPid(c.init.Pid())
	if err != nil {
		return nil, err
	}
	c.cg = cg
	return cg, nil
}

func (c *container) Stats(ctx context.Context) (typeurl.Any, error) {
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	return cg.Stats(ctx)
}

func (c *container) Update(ctx context.Context, res *specs.LinuxResources) error {
	if err := c.cli.Update(ctx, c.id, res); err != nil {
		return cliError(err, "update", c.cli.Log)
	}
	return nil
}

func (c *container) Checkpoint(ctx context.Context, req *runtime.CheckpointRequest) error {
	// The shim checkpoints a container on ZFS itself; one reaching here is not on ZFS.
	return runtime.CheckpointNeedsZFS(Name)
}

func (c *container) OOM() <-chan struct{} {
	cg, err := c.cgroup()
	if err != nil {
		return nil
	}
	ch, err := cg.OOMEvents(context.Background())
	if err != nil {
		return nil
	}
	return ch
}

// OOMCount is the number of OOM kills in the container's memory cgroup; the CLI keeps the
// cgroup until delete, so it is readable after the init's exit.
func (c *container) OOMCount() (uint64, bool) {
	c.mu.Lock()
	cg := c.cg
	c.mu.Unlock()
	if cg == nil {
		return 0, false
	}
	n, err := cg.OOMKilled()
	return n, err == nil
}

func (c *container) Delete(ctx context.Context, force bool) error {
	err := c.cli.Delete(ctx, c.id, &runc.DeleteOpts{Force: force})
	if err != nil && !isNotExist(err) {
		return cliError(err, "delete", c.cli.Log)
	}
	os.Remove(filepath.Join(c.stateDir, "init.pid"))
	return nil
}

// killRemaining kills what the dead init left in the container's cgroup and waits until
// it is gone.
func (c *container) killRemaining() {
	c.mu.Lock()
	cg := c.cg
	c.mu.Unlock()
	if cg == nil {
		return
	}
	if err := cgroups.KillAllWait(context.Background(), cg, killRemainingTimeout); err != nil {
		log.L.WithError(err).WithField("id", c.id).Warn("crun: kill the processes left after the init's exit")
	}
}
