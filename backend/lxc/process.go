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

	"github.com/lxcri/lxcri/runtime"
)

// process is the init or an exec'ed process of a container, run by lxcri-start.
type process struct {
	*runtime.Proc
	c        *container
	init     bool
	spec     *specs.Process // exec only
	execArgs []string       // exec only: lxcri-start arguments

	mu      sync.Mutex
	started bool
	pidfd   int // -1 when closed

	// terminal: the init's pty (made at Create), or the size asked for an exec'ed
	// process's terminal before it exists
	master      console.Console
	slave       *os.File
	pendingSize *console.WinSize
	attached    bool
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
	p.master, p.slave, p.attached = m, slave, true
	p.mu.Unlock()
	return nil
}

// ResizePty resizes the process's terminal; for an exec'ed process whose terminal does
// not exist yet (before Start), the size is applied when it does.
func (p *process) ResizePty(ctx context.Context, ws console.WinSize) error {
	p.mu.Lock()
	if !p.attached && p.IO() != nil && p.IO().Terminal() && !p.Exited() {
		p.pendingSize = &ws
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	return p.Proc.ResizePty(ctx, ws)
}

// Start runs an exec'ed process; the init starts with Container.Start.
func (p *process) Start(ctx context.Context) error {
	if p.init {
		return fmt.Errorf("the init process starts with the container: %w", errdefs.ErrFailedPrecondition)
	}
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return fmt.Errorf("exec %s was started already: %w", p.ID(), errdefs.ErrFailedPrecondition)
	}
	p.started = true
	p.mu.Unlock()
	if p.c.init.Exited() || p.c.init.Pid() == 0 {
		return fmt.Errorf("container %s is not running: %w", p.c.id, errdefs.ErrFailedPrecondition)
	}
	cmd := exec.Command(p.c.b.s.helper, p.execArgs...)
	cmd.Dir = p.c.dir
	var size *specs.Box
	if p.spec != nil {
		size = p.spec.ConsoleSize
	}
	return p.run(ctx, cmd, size)
}

// run starts lxcri-start (cmd) with the process's stdio and waits until the process runs
// its program, failed to, or already ended.
func (p *process) run(ctx context.Context, cmd *exec.Cmd, size *specs.Box) (retErr error) {
	pio := p.IO()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	// r is read to its end by waitRunning's reader, so that the helper never writes
	// into a pipe nobody reads.
	cmd.ExtraFiles = []*os.File{w} // fd 3: the helper's report
	// Its own session: liblxc's monitor turns a SIGHUP into a SIGTERM of the init.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}

	var master console.Console
	var slave, consoleSock *os.File
	var onPid func()
	closeSlave := func() {}
	var closeAfterStart []*os.File
	switch {
	case pio.Terminal() && p.init:
		p.mu.Lock()
		master, slave = p.master, p.slave
		p.slave = nil
		p.mu.Unlock()
		if slave == nil {
			w.Close()
			return fmt.Errorf("container %s: the init's terminal is gone: %w", p.c.id, errdefs.ErrFailedPrecondition)
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr.Setctty = true
		cmd.SysProcAttr.Ctty = 0
		// The slave stays open for unCook, which closes it: an open slave would keep the
		// master's reader from seeing the end.
		var once sync.Once
		closeSlave = func() { once.Do(func() { slave.Close() }) }
		defer func() {
			if retErr != nil || onPid == nil {
				closeSlave()
			}
		}()
	case pio.Terminal():
		// The exec'ed process allocates its pty from the container's devpts and sends
		// the master over fd 4.
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			w.Close()
			return fmt.Errorf("console socket: %w", err)
		}
		consoleSock = os.NewFile(uintptr(fds[0]), "console-socket")
		child := os.NewFile(uintptr(fds[1]), "console-socket-child")
		defer consoleSock.Close()
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			w.Close()
			child.Close()
			return err
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
		cmd.ExtraFiles = append(cmd.ExtraFiles, child)
		closeAfterStart = append(closeAfterStart, null, child)
	default:
		pio.Set(cmd)
	}

	helperID, _ := fileID(cmd.Path)
	exitCh, err := p.c.exits.Start(cmd)
	w.Close()
	for _, f := range closeAfterStart {
		f.Close()
	}
	if err != nil {
		r.Close()
		return fmt.Errorf("run %s: %w", cmd.Path, err)
	}
	var consoleCh chan consoleResult
	if consoleSock != nil {
		consoleCh = make(chan consoleResult, 1)
		go func() {
			c, err := recvConsole(consoleSock)
			if err == nil {
				// Size it before the process goes on (it waits for this byte).
				p.mu.Lock()
				pending := p.pendingSize
				p.mu.Unlock()
				if pending != nil {
					c.Resize(*pending)
				} else {
					resize(c, size)
				}
				consoleSock.Write([]byte{0})
			}
			consoleCh <- consoleResult{c, err}
		}()
	}
	if master == nil && consoleSock == nil {
		pio.CloseAfterStart()
	}

	if master != nil {
		// Our pty must be raw: the container's pty is the one with a line discipline
		// (echo, CR-LF, signal characters); ours only carries bytes, or every line would
		// end in CR CR LF. liblxc sets its relay's peer (our pty's slave, whose termios are
		// the ones that count) to cook output when it sets up the console, after the init
		// got its pid and just before it execs: watch for that and undo it at once.
		if err := makeRaw(int(slave.Fd())); err == nil {
			onPid = func() {
				go func() {
					unCook(slave, time.Second)
					closeSlave()
				}()
			}
		}
	}
	pid, status, exited, err := p.waitRunning(ctx, r, exitCh, helperID, cmd.Process.Pid, onPid)
	if err != nil {
		what := "start container " + p.c.id
		if !p.init {
			what = fmt.Sprintf("exec %s in container %s", p.ID(), p.c.id)
		}
		err = fmt.Errorf("%s: %w", what, err)
		// Whoever waits for this process must see it end.
		if exited {
			go p.finish(status)
		} else {
			go func() { p.finish(<-exitCh) }()
		}
		return err
	}
	p.SetPid(pid)
	if consoleCh != nil {
		// The pty master was sent before the process ran its program.
		var res consoleResult
		select {
		case res = <-consoleCh:
		case <-time.After(5 * time.Second):
			res.err = errors.New("timed out")
		}
		if res.err == nil {
			res.err = pio.AttachConsole(ctx, res.c)
		}
		if res.err == nil {
			p.mu.Lock()
			p.attached = true
			pending := p.pendingSize
			p.pendingSize = nil
			p.mu.Unlock()
			if pending != nil {
				pio.Resize(*pending)
			}
		}
		if res.err != nil {
			if !exited {
				p.Kill(ctx, syscall.SIGKILL)
				go func() { p.finish(<-exitCh) }()
			} else {
				go p.finish(status)
			}
			return fmt.Errorf("exec %s in container %s: receive its terminal: %w", p.ID(), p.c.id, res.err)
		}
	}
	if exited {
		go p.finish(status)
		return nil
	}
	go func() { p.finish(<-exitCh) }()
	return nil
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

type consoleResult struct {
	c   console.Console
	err error
}

func resize(c console.Console, size *specs.Box) {
	if size != nil && size.Width > 0 && size.Height > 0 {
		c.Resize(console.WinSize{Width: uint16(size.Width), Height: uint16(size.Height)})
	}
}

// recvConsole receives the pty master an exec'ed process sends over the console socket.
func recvConsole(sock *os.File) (console.Console, error) {
	buf := make([]byte, 16)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 && oobn == 0 {
			return nil, errors.New("the process closed its console socket without sending a terminal")
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			fds, err := unix.ParseUnixRights(&m)
			if err != nil || len(fds) == 0 {
				continue
			}
			for _, extra := range fds[1:] {
				unix.Close(extra)
			}
			f := os.NewFile(uintptr(fds[0]), "ptmx")
			c, err := console.ConsoleFromFile(f)
			if err != nil {
				f.Close()
				return nil, err
			}
			return c, nil
		}
	}
}

// waitRunning reads the helper's report (fd 3) until the process runs its program: its
// /proc/PID/exe is no longer the helper (it starts as the helper's clone). It returns the
// pid and, when the helper already exited, its status.
func (p *process) waitRunning(ctx context.Context, r *os.File, exitCh <-chan int, helperID [2]uint64, helperPid int, onPid func()) (pid, status int, exited bool, err error) {
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		defer r.Close()
		s := bufio.NewScanner(r)
		for s.Scan() {
			select {
			case lines <- s.Text():
			default: // nobody listens any more
			}
		}
	}()
	var errMsg string
	handle := func(l string) {
		switch {
		case strings.HasPrefix(l, "pid "):
			if n, err := strconv.Atoi(strings.TrimSpace(l[4:])); err == nil && n > 0 && pid == 0 {
				pid = n
				p.openPidfd(n)
				if onPid != nil {
					onPid()
				}
			}
		case strings.HasPrefix(l, "error "):
			if errMsg == "" {
				errMsg = l[6:]
			}
		}
	}
	poll := time.NewTicker(200 * time.Microsecond)
	defer poll.Stop()
	for {
		if pid > 0 && errMsg == "" && execed(pid, helperID) {
			return pid, 0, false, nil
		}
		select {
		case l, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			handle(l)
		case st := <-exitCh:
			// Everything the helper wrote is in the pipe: read it to the end.
			timeout := time.After(time.Second)
		drain:
			for lines != nil {
				select {
				case l, ok := <-lines:
					if !ok {
						break drain
					}
					handle(l)
				case <-timeout:
					break drain
				}
			}
			if errMsg != "" {
				return pid, st, true, fmt.Errorf("%s%s: %w", errMsg, logTail(p.c.logPath()), errdefs.ErrFailedPrecondition)
			}
			if pid == 0 {
				return 0, st, true, fmt.Errorf("lxcri-start exited with status %d before the process ran%s: %w", st, logTail(p.c.logPath()), errdefs.ErrUnknown)
			}
			return pid, st, true, nil
		case <-poll.C:
		case <-ctx.Done():
			syscall.Kill(helperPid, syscall.SIGKILL)
			return pid, 0, false, ctx.Err()
		}
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

// finish records the exit of the process (the helper's status is the process's).
func (p *process) finish(status int) {
	if p.init {
		p.c.settleOOM()
	}
	p.mu.Lock()
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
		p.pidfd = -1
	}
	p.mu.Unlock()
	p.SetExited(status)
}

// exitUnstarted ends a process that never ran: nothing will write its output pipes.
func (p *process) exitUnstarted(status int) {
	if pio := p.IO(); pio != nil && !pio.Terminal() {
		pio.CloseAfterStart()
	}
	p.closeSlave()
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
	if p.Exited() {
		return fmt.Errorf("process %s has already exited: %w", p.ID(), errdefs.ErrNotFound)
	}
	if p.init {
		p.c.mu.Lock()
		started := p.c.started
		p.c.mu.Unlock()
		if !started {
			// A created container has no process yet; like runc's waiting init, it
			// ends with a signal whose default action is to terminate.
			if !signalsIgnoredByDefault[sig] {
				p.exitUnstarted(128 + int(sig))
			}
			return nil
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
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
	cmd := &exec.Cmd{Path: h.Path, Args: args, Env: h.Env, Stdin: stdin, Stdout: outW, Stderr: outW}
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
		cmd.Process.Kill()
		<-exitCh
		return fmt.Errorf("hook %s timed out after %ds", h.Path, *h.Timeout)
	case <-ctx.Done():
		cmd.Process.Kill()
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
