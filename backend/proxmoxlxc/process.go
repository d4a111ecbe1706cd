package proxmoxlxc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"github.com/containerd/console"
	"github.com/containerd/errdefs"
	"github.com/lxc/go-lxc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/lxcri/lxcri/runtime"
)

// process is the task's init or an exec'ed process, attached to the running CT through
// the node's LXC (liblxc's attach, what `pct exec` runs): it enters the CT's namespaces and
// cgroup with the stdio the shim gives it, as a child of the shim, which waits for it.
type process struct {
	*runtime.Proc
	c    *container
	spec *specs.Process
	init bool

	mu      sync.Mutex
	started bool
	pidfd   int
}

// checkExec refuses what an attached process cannot have.
func checkExec(p *specs.Process) error {
	if len(p.Args) == 0 {
		return fieldErr("process.args", "required")
	}
	if p.User.Umask != nil {
		return fieldErr("process.user.umask", "an attached process gets no umask of its own")
	}
	for i, e := range p.Env {
		if !containsEq(e) {
			return fieldErr(fmt.Sprintf("process.env[%d]", i), "want NAME=VALUE")
		}
	}
	if p.ApparmorProfile != "" || p.SelinuxLabel != "" {
		return fieldErr("process.apparmorProfile", "an attached process runs under the CT's AppArmor profile")
	}
	if len(p.Rlimits) > 0 {
		for i, r := range p.Rlimits {
			if r.Type != "RLIMIT_NOFILE" {
				return fieldErr(fmt.Sprintf("process.rlimits[%d]", i), "%s: an attached process gets the CT's limits", r.Type)
			}
		}
	}
	return nil
}

func containsEq(s string) bool {
	for i := 1; i < len(s); i++ {
		if s[i] == '=' {
			return true
		}
	}
	return false
}

// Start runs an exec'ed process; the init starts with the container.
func (p *process) Start(ctx context.Context) error {
	if p.init {
		return fmt.Errorf("the init process starts with the container: %w", errdefs.ErrFailedPrecondition)
	}
	if p.c.init.Exited() || p.c.init.Pid() == 0 {
		return fmt.Errorf("container %s is not running: %w", p.c.id, errdefs.ErrFailedPrecondition)
	}
	return p.attach(ctx)
}

func (p *process) attach(ctx context.Context) (retErr error) {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return fmt.Errorf("process %s was started already: %w", p.ID(), errdefs.ErrFailedPrecondition)
	}
	p.started = true
	p.mu.Unlock()

	stdin, stdout, stderr, closeChild, err := p.stdio(ctx)
	if err != nil {
		return err
	}
	defer closeChild()

	lc, err := lxc.NewContainer(ctName(p.c.vmid), p.c.b.lxcPath)
	if err != nil {
		return fmt.Errorf("CT %d in %s: %w", p.c.vmid, p.c.b.lxcPath, err)
	}
	defer lxc.Release(lc)
	opts := lxc.DefaultAttachOptions
	opts.ClearEnv = true
	opts.Env = p.spec.Env
	opts.Cwd = p.spec.Cwd
	if opts.Cwd == "" {
		opts.Cwd = "/"
	}
	opts.UID = int(p.spec.User.UID)
	opts.GID = int(p.spec.User.GID)
	opts.Groups = nil
	for _, g := range p.spec.User.AdditionalGids {
		opts.Groups = append(opts.Groups, int(g))
	}
	opts.StdinFd, opts.StdoutFd, opts.StderrFd = stdin.Fd(), stdout.Fd(), stderr.Fd()
	pid, err := lc.RunCommandNoWait(p.spec.Args, opts)
	if err != nil {
		return fmt.Errorf("attach %q to CT %d: %v: %w", p.spec.Args[0], p.c.vmid, err, errdefs.ErrFailedPrecondition)
	}
	// The attached process is the shim's child now (liblxc's intermediate process has
	// exited; the shim is a subreaper).
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		p.mu.Lock()
		p.pidfd = fd
		p.mu.Unlock()
	}
	p.SetPid(pid)
	ch := p.c.exits.Wait(pid)
	go func() {
		st := <-ch
		p.mu.Lock()
		if p.pidfd > 0 {
			unix.Close(p.pidfd)
			p.pidfd = -1
		}
		p.mu.Unlock()
		if p.init {
			p.c.initExited()
		}
		p.SetExited(st)
	}()
	return nil
}

// stdio returns the files the attached process gets as stdin, stdout and stderr, and a
// function that closes the shim's copies once it has them.
func (p *process) stdio(ctx context.Context) (in, out, errf *os.File, closeChild func(), err error) {
	pio := p.IO()
	devNull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if pio != nil && pio.Terminal() {
		m, slavePath, err := console.NewPty()
		if err != nil {
			devNull.Close()
			return nil, nil, nil, nil, fmt.Errorf("allocate pty: %w", err)
		}
		slave, err := os.OpenFile(slavePath, os.O_RDWR|syscall.O_NOCTTY, 0)
		if err != nil {
			m.Close()
			devNull.Close()
			return nil, nil, nil, nil, err
		}
		if p.spec.ConsoleSize != nil {
			m.Resize(console.WinSize{Height: uint16(p.spec.ConsoleSize.Height), Width: uint16(p.spec.ConsoleSize.Width)})
		}
		if err := pio.AttachConsole(ctx, m); err != nil {
			slave.Close()
			devNull.Close()
			return nil, nil, nil, nil, err
		}
		return slave, slave, slave, func() { slave.Close(); devNull.Close() }, nil
	}
	var cmd exec.Cmd
	if pio != nil {
		pio.Set(&cmd)
	}
	pick := func(v any) *os.File {
		if f, ok := v.(*os.File); ok && f != nil {
			return f
		}
		return devNull
	}
	return pick(cmd.Stdin), pick(cmd.Stdout), pick(cmd.Stderr), func() {
		if pio != nil {
			pio.CloseAfterStart()
		}
		devNull.Close()
	}, nil
}

func (p *process) Kill(ctx context.Context, sig syscall.Signal) error {
	if p.Pid() == 0 {
		if p.init {
			return nil
		}
		return fmt.Errorf("process %s has not started: %w", p.ID(), errdefs.ErrFailedPrecondition)
	}
	if p.Exited() {
		return fmt.Errorf("process %s has exited: %w", p.ID(), errdefs.ErrNotFound)
	}
	// Under the lock, so the pidfd is not closed (and its number reused) meanwhile.
	p.mu.Lock()
	var err error
	if p.pidfd > 0 {
		err = unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
	} else {
		err = unix.Kill(p.Pid(), sig)
	}
	p.mu.Unlock()
	if err == unix.ESRCH {
		return fmt.Errorf("process %s has exited: %w", p.ID(), errdefs.ErrNotFound)
	}
	return err
}
