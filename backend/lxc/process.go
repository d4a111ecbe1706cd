package lxc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/lxcri/lxcri/backend/lxcstart"
	"github.com/lxcri/lxcri/runtime"
)

// process is the init or an exec'ed process of a container, run by lxcri-start.
type process struct {
	*runtime.Proc
	c        *container
	init     bool
	spec     *specs.Process // exec only
	execSpec []byte         // exec only: lxcri-start's spec record

	mu    sync.Mutex
	pidfd int // -1 when closed
	h     *helperRun
	// init between Create and Start: the write end of the gate the helper's start-host
	// hook waits on (a byte releases the init, EOF aborts it)
	gate *os.File
	// killedStatus, when not 0, is reported instead of the helper's status: the init was
	// killed before it ran its program
	killedStatus int

	// terminal: the init's pty (made at Create), or the size asked for an exec'ed
	// process's terminal before it exists
	master      console.Console
	slave       *os.File
	pendingSize lxcstart.PendingSize
}

// openTerminal makes the init's pty and hands its master to the IO: the helper, the
// container's monitor, gets the slave as controlling terminal at Start; liblxc gives the
// init a pty of the container's devpts as console and relays between the two (window size
// included).
func (p *process) openTerminal(ctx context.Context, size *specs.Box) error {
	m, slavePath, err := console.NewPty()
	if err != nil {
		return fmt.Errorf("allocate pty: %w", err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return fmt.Errorf("open pty %s: %w", slavePath, err)
	}
	resize(m, size)
	if err := p.IO().AttachConsole(ctx, m); err != nil {
		slave.Close()
		return err
	}
	p.mu.Lock()
	p.master, p.slave = m, slave
	p.mu.Unlock()
	p.pendingSize.Attached()
	return nil
}

// ResizePty resizes the process's terminal; for an exec'ed process whose terminal does
// not exist yet (before Start), the size is applied when it does.
func (p *process) ResizePty(ctx context.Context, ws console.WinSize) error {
	if p.IO() != nil && p.IO().Terminal() && !p.Exited() && p.pendingSize.Keep(ws) {
		return nil
	}
	return p.Proc.ResizePty(ctx, ws)
}

// Start runs an exec'ed process; the init starts with Container.Start.
func (p *process) Start(ctx context.Context) error {
	if p.init {
		return fmt.Errorf("the init process starts with the container: %w", errdefs.ErrFailedPrecondition)
	}
	if p.c.init.Exited() || p.c.init.Pid() == 0 {
		return fmt.Errorf("container %s is not running: %w", p.c.id, errdefs.ErrFailedPrecondition)
	}
	cmd := exec.Command(p.c.b.s.helper, lxcstart.Args("exec", p.c.name, p.c.lxcpath)...)
	cmd.Dir = p.c.dir
	var size *specs.Box
	if p.spec != nil {
		size = p.spec.ConsoleSize
	}
	if err := p.launch(ctx, cmd, p.execSpec, size, false); err != nil {
		return err
	}
	return p.h.result(ctx, p.h.wait(ctx, p.h.running))
}

// helperRun follows one lxcri-start process: its report (fd 3) and its exit.
type helperRun struct {
	p        *process
	pid      int // the helper's
	helperID [2]uint64
	lines    chan string
	done     chan struct{} // closed when the helper exited
	status   int           // valid once done is closed

	target int // the process's pid, from "pid N"
	errMsg string
	// errKind is what errMsg's failure is: FailedPrecondition, or InvalidArgument for a
	// configuration liblxc refused ("invalid MSG").
	errKind error
	onPid   func()
}

// launch starts lxcri-start (cmd) with the process's stdio and its spec record, and waits
// until it reports the process's pid. With gate (the init, at Create), the helper's
// start-host hook then waits for release (Start) before the init runs its program.
func (p *process) launch(ctx context.Context, cmd *exec.Cmd, spec []byte, size *specs.Box, gate bool) (retErr error) {
	pio := p.IO()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		r.Close()
		w.Close()
		return err
	}
	// The child's ends, closed once it has them (before waiting for its report: the
	// report's end of file must not wait for us).
	closeAfterStart := []*os.File{w, specR}
	closed := false
	closeChildEnds := func() {
		if !closed {
			closed = true
			for _, f := range closeAfterStart {
				f.Close()
			}
		}
	}
	specSent := false
	defer func() {
		closeChildEnds()
		if !specSent {
			specW.Close()
		}
		if retErr != nil {
			r.Close()
		}
	}()
	// fd 3 (lxcstart.ReportFD): the helper's report; fd 6 (lxcstart.SpecFD): its spec record
	cmd.ExtraFiles = []*os.File{w, nil, nil, specR}
	// Its own session: liblxc's monitor turns a SIGHUP into a SIGTERM of the init.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if gate {
		gr, gw, err := os.Pipe()
		if err != nil {
			return err
		}
		cmd.ExtraFiles[2] = gr // fd 5: the gate
		closeAfterStart = append(closeAfterStart, gr)
		p.mu.Lock()
		p.gate = gw
		p.mu.Unlock()
		defer func() {
			if retErr != nil {
				p.closeGate()
			}
		}()
	}

	var consoleSock *os.File
	switch {
	case pio.Terminal() && p.init:
		p.mu.Lock()
		slave := p.slave
		p.mu.Unlock()
		if slave == nil {
			return fmt.Errorf("container %s: the init's terminal is gone: %w", p.c.id, errdefs.ErrFailedPrecondition)
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr.Setctty = true
		cmd.SysProcAttr.Ctty = 0
	case pio.Terminal():
		// The exec'ed process allocates its pty from the container's devpts and sends
		// the master over fd 4.
		sock, child, err := lxcstart.ConsoleSocket()
		if err != nil {
			return fmt.Errorf("console socket: %w", err)
		}
		consoleSock = sock
		closeAfterStart = append(closeAfterStart, child)
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			consoleSock.Close()
			return err
		}
		closeAfterStart = append(closeAfterStart, null)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
		cmd.ExtraFiles[1] = child
	default:
		pio.Set(cmd)
	}

	helperID, _ := fileID(cmd.Path)
	exitCh, err := p.c.exits.Start(cmd)
	closeChildEnds()
	if err != nil {
		if consoleSock != nil {
			consoleSock.Close()
		}
		return fmt.Errorf("run %s: %w", cmd.Path, err)
	}
	specSent = true
	go lxcstart.SendSpec(specW, spec)
	if !pio.Terminal() {
		pio.CloseAfterStart()
	}
	h := &helperRun{p: p, pid: cmd.Process.Pid, helperID: helperID, lines: make(chan string, 64), done: make(chan struct{})}
	p.mu.Lock()
	p.h = h
	p.mu.Unlock()
	go func() {
		defer close(h.lines)
		defer r.Close()
		s := bufio.NewScanner(r)
		for s.Scan() {
			select {
			case h.lines <- s.Text():
			default: // nobody listens any more
			}
		}
	}()
	// The helper's exit is the process's.
	go func() {
		h.status = <-exitCh
		close(h.done)
		p.finish(h.status)
	}()

	var consoleCh <-chan lxcstart.Received
	if consoleSock != nil {
		consoleCh = lxcstart.ReceiveConsole(consoleSock, func(c console.Console) {
			if pending := p.pendingSize.Size(); pending != nil {
				c.Resize(*pending)
			} else {
				resize(c, size)
			}
		})
	}

	cond := h.running
	if gate {
		cond = func() bool { return h.target > 0 }
	}
	err = h.wait(ctx, cond)
	if err == nil && consoleCh != nil && h.target > 0 {
		if err = p.attachConsole(ctx, consoleCh); err != nil {
			// A process that sent no terminal reported why before it ended (and
			// attachConsole killed it): say that, not only what the shim saw.
			h.wait(ctx, h.exited)
			if h.errMsg != "" {
				err = fmt.Errorf("%w: %s%s", err, h.errMsg, logTail(p.c.logPath()))
			}
		}
	}
	if gate && err == nil {
		err = h.result(ctx, nil)
	}
	return err
}

// attachConsole hands the pty master an exec'ed process sent to its IO.
func (p *process) attachConsole(ctx context.Context, ch <-chan lxcstart.Received) error {
	if err := lxcstart.AttachConsole(ctx, p.IO(), ch, &p.pendingSize, 5*time.Second); err != nil {
		p.Kill(ctx, syscall.SIGKILL)
		return fmt.Errorf("exec %s in container %s: receive its terminal: %w", p.ID(), p.c.id, err)
	}
	return nil
}

// running tells whether the process runs its program: its /proc/PID/exe is no longer the
// helper (it starts as the helper's clone).
func (h *helperRun) running() bool {
	return h.target > 0 && h.errMsg == "" && execed(h.target, h.helperID)
}

func (h *helperRun) exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

func (h *helperRun) handle(l string) {
	switch r := lxcstart.ParseReport(l); r.Kind {
	case lxcstart.Pid:
		if h.target == 0 {
			h.target = r.Pid
			h.p.openPidfd(r.Pid)
			h.p.SetPid(r.Pid)
			if h.onPid != nil {
				h.onPid()
			}
		}
	case lxcstart.Error:
		if h.errMsg == "" {
			h.errMsg, h.errKind = r.Msg, errdefs.ErrFailedPrecondition
		}
	case lxcstart.Invalid:
		if h.errMsg == "" {
			h.errMsg, h.errKind = r.Msg, errdefs.ErrInvalidArgument
		}
	}
}

// wait reads the helper's report until cond holds or the helper exited (then everything
// it wrote is read).
func (h *helperRun) wait(ctx context.Context, cond func() bool) error {
	poll := time.NewTicker(200 * time.Microsecond)
	defer poll.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case l, ok := <-h.lines:
			if !ok {
				h.lines = nil
				continue
			}
			h.handle(l)
		case <-h.done:
			timeout := time.After(time.Second)
			for h.lines != nil {
				select {
				case l, ok := <-h.lines:
					if !ok {
						h.lines = nil
						continue
					}
					h.handle(l)
				case <-timeout:
					return nil
				}
			}
			return nil
		case <-poll.C:
		case <-ctx.Done():
			syscall.Kill(h.pid, syscall.SIGKILL)
			return ctx.Err()
		}
	}
}

// result turns the state wait left into Start's outcome.
func (h *helperRun) result(ctx context.Context, waitErr error) error {
	p := h.p
	what := "start container " + p.c.id
	if p.init && !p.c.isStarted() {
		what = "create container " + p.c.id
	}
	if !p.init {
		what = fmt.Sprintf("exec %s in container %s", p.ID(), p.c.id)
	}
	if waitErr != nil {
		return fmt.Errorf("%s: %w", what, waitErr)
	}
	if h.errMsg != "" {
		if !h.exited() {
			syscall.Kill(h.pid, syscall.SIGKILL)
		}
		return fmt.Errorf("%s: %s%s: %w", what, h.errMsg, logTail(p.c.logPath()), h.errKind)
	}
	if h.target == 0 {
		st := -1
		if h.exited() {
			st = h.status
		}
		return fmt.Errorf("%s: lxcri-start exited with status %d before the process ran%s: %w", what, st, logTail(p.c.logPath()), errdefs.ErrUnknown)
	}
	return nil
}

// release lets the init, held at Create, run its program, and waits until it does.
func (p *process) release(ctx context.Context) error {
	p.mu.Lock()
	h, gate, killed := p.h, p.gate, p.killedStatus
	p.gate = nil
	slave := p.slave
	p.mu.Unlock()
	if h == nil || gate == nil || killed != 0 {
		if gate != nil {
			gate.Close()
		}
		return fmt.Errorf("container %s was killed before it started: %w", p.c.id, errdefs.ErrFailedPrecondition)
	}
	if slave != nil {
		// Our pty must be raw: the container's pty is the one with a line discipline
		// (echo, CR-LF, signal characters); ours only carries bytes, or every line would
		// end in CR CR LF. liblxc sets its relay's peer (our pty's slave, whose termios are
		// the ones that count) to cook output when it sets up the console, right after
		// this release and just before the init execs: watch for that and undo it.
		makeRaw(int(slave.Fd()))
		go func() {
			unCook(slave, time.Second)
			p.closeSlave()
		}()
	}
	_, err := gate.Write([]byte{1})
	gate.Close()
	if err != nil {
		return fmt.Errorf("start container %s: release the init: %w", p.c.id, err)
	}
	return h.result(ctx, h.wait(ctx, h.running))
}

// waitEnd waits (at most d) for the process's end to be recorded.
func (p *process) waitEnd(d time.Duration) bool {
	select {
	case <-p.Done():
		return true
	case <-time.After(d):
		return false
	}
}

// closeGate aborts an init held at Create.
func (p *process) closeGate() {
	p.mu.Lock()
	g := p.gate
	p.gate = nil
	p.mu.Unlock()
	if g != nil {
		g.Close()
	}
}

// unCook waits (at most d) for liblxc to turn output processing on for the pty slave,
// and makes it raw again.
func unCook(slave *os.File, d time.Duration) {
	fd := int(slave.Fd())
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			return
		}
		if t.Oflag&unix.OPOST != 0 {
			makeRaw(fd)
			return
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// makeRaw is cfmakeraw(3) (containerd/console's SetRaw keeps output processing on).
func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

func resize(c console.Console, size *specs.Box) {
	if size != nil && size.Width > 0 && size.Height > 0 {
		c.Resize(console.WinSize{Width: uint16(size.Width), Height: uint16(size.Height)})
	}
}

func (c *container) logPath() string { return c.dir + "/" + logFile }

// fileID is a file's device and inode.
func fileID(path string) ([2]uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return [2]uint64{}, err
	}
	return [2]uint64{st.Dev, st.Ino}, nil
}

// execed tells whether pid runs another program than the helper it was cloned from.
func execed(pid int, helperID [2]uint64) bool {
	id, err := fileID("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return false // gone, or a zombie: the helper's exit tells
	}
	return id != helperID
}

func (p *process) openPidfd(pid int) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return
	}
	p.mu.Lock()
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
	}
	p.pidfd = fd
	p.mu.Unlock()
}

// finish records the exit of the process (the helper's status is the process's, unless
// the init was killed before it ran).
func (p *process) finish(status int) {
	if p.init && p.c.killAllOnExit && p.c.isStarted() {
		// Without a pid namespace of its own, liblxc's monitor may end before the
		// init's children do: whoever sees the init's exit sees none of them left.
		p.c.killRemaining()
	}
	p.closeGate()
	p.closeSlave()
	p.mu.Lock()
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
		p.pidfd = -1
	}
	if p.killedStatus != 0 {
		status = p.killedStatus
	}
	p.mu.Unlock()
	p.SetExited(status)
}

// closeSlave closes the init's pty slave if Start did not take it.
func (p *process) closeSlave() {
	p.mu.Lock()
	s := p.slave
	p.slave = nil
	p.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// signalsIgnoredByDefault do not end a process that has no handler for them.
var signalsIgnoredByDefault = map[syscall.Signal]bool{
	syscall.SIGCHLD: true, syscall.SIGURG: true, syscall.SIGWINCH: true, syscall.SIGCONT: true,
	syscall.SIGSTOP: true, syscall.SIGTSTP: true, syscall.SIGTTIN: true, syscall.SIGTTOU: true, 0: true,
}

func (p *process) Kill(ctx context.Context, sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.init && p.gate != nil && !signalsIgnoredByDefault[sig] {
		// The init is held at Create, before its program: like runc's waiting init, it
		// dies of any signal whose default action is to end a process (it has no handler
		// yet). liblxc's monitor waits in the gate hook: close it so it can finish.
		p.killedStatus = 128 + int(sig)
		if p.pidfd >= 0 {
			unix.PidfdSendSignal(p.pidfd, syscall.SIGKILL, nil, 0)
		}
		p.gate.Close()
		p.gate = nil
		return nil
	}
	if p.pidfd < 0 {
		if p.Pid() == 0 {
			return fmt.Errorf("process %s has not started: %w", p.ID(), errdefs.ErrFailedPrecondition)
		}
		return fmt.Errorf("process %s has already exited: %w", p.ID(), errdefs.ErrNotFound)
	}
	if err := unix.PidfdSendSignal(p.pidfd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("process %s has already exited: %w", p.ID(), errdefs.ErrNotFound)
		}
		return fmt.Errorf("signal %d to process %s: %w", sig, p.ID(), err)
	}
	return nil
}

// runHook runs an OCI hook on the host with the container state on stdin.
func (c *container) runHook(ctx context.Context, h specs.Hook, state []byte) error {
	stdin, stdinW, err := os.Pipe()
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		stdin.Close()
		stdinW.Close()
		return err
	}
	args := h.Args
	if len(args) == 0 {
		args = []string{h.Path}
	}
	cmd := &exec.Cmd{Path: h.Path, Args: args, Env: h.Env, Stdin: stdin, Stdout: outW, Stderr: outW,
		// Its own process group: a timeout kills all the hook started.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	exitCh, err := c.exits.Start(cmd)
	stdin.Close()
	outW.Close()
	if err != nil {
		stdinW.Close()
		outR.Close()
		return err
	}
	go func() {
		stdinW.Write(state)
		stdinW.Close()
	}()
	var out bytes.Buffer
	outDone := make(chan struct{})
	go func() {
		io.Copy(&out, io.LimitReader(outR, 64<<10))
		io.Copy(io.Discard, outR)
		outR.Close()
		close(outDone)
	}()
	var timeout <-chan time.Time
	if h.Timeout != nil && *h.Timeout > 0 {
		timeout = time.After(time.Duration(*h.Timeout) * time.Second)
	}
	var status int
	select {
	case status = <-exitCh:
	case <-timeout:
		killGroup(cmd.Process.Pid)
		<-exitCh
		return fmt.Errorf("hook %s timed out after %ds", h.Path, *h.Timeout)
	case <-ctx.Done():
		killGroup(cmd.Process.Pid)
		<-exitCh
		return ctx.Err()
	}
	select {
	case <-outDone:
	case <-time.After(time.Second):
	}
	if status != 0 {
		return fmt.Errorf("hook %s exited with status %d: %s", h.Path, status, strings.TrimSpace(out.String()))
	}
	return nil
}

// killGroup kills the process group pid leads (the process alone if it has none yet).
func killGroup(pid int) {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
