package crun

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/lxcri/lxcri/runtime"
)

// process is the init or an exec'ed process of a container.
type process struct {
	*runtime.Proc
	c    *container
	spec *specs.Process // exec only
	init bool
}

// killRemainingTimeout bounds the wait for the processes an init without a pid namespace
// of its own leaves behind to die of SIGKILL.
const killRemainingTimeout = 10 * time.Second

func (p *process) waitExit(ch <-chan int) {
	status := <-ch
	if p.init && p.c.killAllOnExit {
		// As containerd's runc shim: whoever sees the init's exit (Wait, State, the exit
		// event) sees a container with no process left.
		p.c.killRemaining()
	}
	p.SetExited(status)
}

// Start runs an exec'ed process with `<cli> exec --detach`.
func (p *process) Start(ctx context.Context) error {
	if p.init {
		return fmt.Errorf("the init process starts with the container: %w", errdefs.ErrFailedPrecondition)
	}
	io := p.IO()
	pidFile := filepath.Join(p.c.stateDir, "exec-"+p.ID()+".pid")
	defer os.Remove(pidFile)
	opts := &runc.ExecOpts{PidFile: pidFile, IO: io.RuncIO(), Detach: true}
	var socket *runc.Socket
	if io.Terminal() {
		s, err := runc.NewTempConsoleSocket()
		if err != nil {
			return fmt.Errorf("console socket: %w", err)
		}
		defer s.Close()
		socket, opts.ConsoleSocket = s, s
	}
	if err := p.c.cli.Exec(ctx, p.c.id, *p.spec, opts); err != nil {
		return cliError(err, filepath.Base(p.c.cli.Command)+" exec", p.c.cli.Log)
	}
	if socket != nil {
		con, err := socket.ReceiveMaster()
		if err != nil {
			return fmt.Errorf("receive pty master: %w", err)
		}
		if err := io.AttachConsole(ctx, con); err != nil {
			return err
		}
	}
	pid, err := runc.ReadPidFile(pidFile)
	if err != nil {
		return fmt.Errorf("read exec pid: %w", err)
	}
	p.SetPid(pid)
	go p.waitExit(p.c.exits.Wait(pid))
	return nil
}

func (p *process) Kill(ctx context.Context, sig syscall.Signal) error {
	if p.Exited() {
		return fmt.Errorf("process %s has already exited: %w", p.ID(), errdefs.ErrNotFound)
	}
	if p.init {
		if err := p.c.cli.Kill(ctx, p.c.id, int(sig), &runc.KillOpts{}); err != nil {
			return killError(cliError(err, "kill", p.c.cli.Log))
		}
		return nil
	}
	pid := p.Pid()
	if pid <= 0 {
		return fmt.Errorf("process %s has not started: %w", p.ID(), errdefs.ErrFailedPrecondition)
	}
	if err := unix.Kill(pid, sig); err != nil {
		if err == unix.ESRCH {
			return fmt.Errorf("process %s has already exited: %w", p.ID(), errdefs.ErrNotFound)
		}
		return err
	}
	return nil
}
