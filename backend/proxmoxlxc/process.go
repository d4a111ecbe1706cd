package proxmoxlxc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/lxcri/lxcri/backend/lxcstart"
	"github.com/lxcri/lxcri/runtime"
)

// process is the task's init or an exec'ed process, run in the CT through the node's LXC
// as `pct exec` does: lxcri-start's exec mode (liblxc's attach, from a single-threaded
// process, so the shim links no liblxc) enters the CT's namespaces and cgroups in every
// hierarchy with the stdio the shim gives it, waits for the process and exits with its
// status. (go-lxc's attach, which the shim used before, turns the attach flags into
// LXC_ATTACH_SETGROUPS alone whenever supplementary groups are given, as containerd's
// default spec gives them, dropping LXC_ATTACH_MOVE_TO_CGROUP: its processes stayed in
// the shim's cgroups, unseen by Pids, Stats and KillAll.)
type process struct {
	*runtime.Proc
	c    *container
	spec *specs.Process
	init bool

	mu      sync.Mutex
	started bool
	pidfd   int // of the attached process; -1 once closed
	// the terminal's size asked before the process's pty exists
	pendingSize lxcstart.PendingSize
}

func newProcess(c *container, id string, pio *runtime.IO, spec *specs.Process, init bool) *process {
	return &process{Proc: runtime.NewProc(id, pio), c: c, spec: spec, init: init, pidfd: -1}
}

// checkExec refuses what an exec'ed process cannot have: a confinement of its own, or
// what lxcri-start's exec mode cannot set (lxcstart.ExecSpec names the field).
func checkExec(p *specs.Process) error {
	if err := checkConfinement(p); err != nil {
		return err
	}
	_, err := lxcstart.ExecSpec(p)
	return err
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

// ResizePty resizes the process's terminal; before the terminal exists (it is made in
// the CT when the process starts) the size is kept for then.
func (p *process) ResizePty(ctx context.Context, ws console.WinSize) error {
	if p.IO() != nil && p.IO().Terminal() && !p.Exited() && p.pendingSize.Keep(ws) {
		return nil
	}
	return p.Proc.ResizePty(ctx, ws)
}

// attach runs the process in the CT and returns once it runs its program (or failed to).
func (p *process) attach(ctx context.Context) (retErr error) {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return fmt.Errorf("process %s was started already: %w", p.ID(), errdefs.ErrFailedPrecondition)
	}
	p.started = true
	p.mu.Unlock()
	what := fmt.Sprintf("exec %s in CT %d", p.ID(), p.c.vmid)
	if p.init {
		what = fmt.Sprintf("start the init of task %s in CT %d", p.c.id, p.c.vmid)
	}

	var initSpec *specs.Process
	if !p.init {
		initSpec = p.c.init.spec
	}
	record, err := execRecord(p.spec, initSpec, p.IO() != nil && p.IO().Terminal())
	if err != nil {
		return err
	}
	h, err := startHelper(p.c.b.helper, ctName(p.c.vmid), p.c.b.lxcPath, p.IO(), p.c.exits)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	h.send(record)
	// The helper's exit is the process's.
	go func() {
		st := <-h.exit
		p.mu.Lock()
		if p.pidfd >= 0 {
			unix.Close(p.pidfd)
			p.pidfd = -1
		}
		p.mu.Unlock()
		if p.init {
			p.c.initExited()
		}
		p.SetExited(st)
	}()

	var size *specs.Box
	if p.spec != nil {
		size = p.spec.ConsoleSize
	}
	consoleCh := h.receiveConsole(func(c console.Console) {
		switch pending := p.pendingSize.Size(); {
		case pending != nil:
			c.Resize(*pending)
		case size != nil && size.Width > 0 && size.Height > 0:
			c.Resize(console.WinSize{Width: uint16(size.Width), Height: uint16(size.Height)})
		}
	})

	pid, errMsg, err := h.report(ctx)
	if pid > 0 {
		p.setPid(pid, h.pid)
	}
	if err == nil && errMsg == "" && pid > 0 && consoleCh != nil {
		err = p.attachConsole(ctx, consoleCh)
	}
	switch {
	case err != nil:
		h.kill()
		return fmt.Errorf("%s: %w", what, err)
	case errMsg != "":
		h.kill()
		return fmt.Errorf("%s: %s: %w", what, errMsg, errdefs.ErrFailedPrecondition)
	case pid == 0:
		return fmt.Errorf("%s: %s exited with status %d before the process ran: %w", what, lxcstart.Name, h.status(), errdefs.ErrUnknown)
	}
	if p.spec != nil && p.spec.OOMScoreAdj != nil {
		p.setOOMScoreAdj(ctx, *p.spec.OOMScoreAdj)
	}
	return nil
}

// setOOMScoreAdj sets the attached process's OOM score adjustment from the host (it runs
// its program already, so a child it forked before keeps the CT's value). Under the
// process's lock and only while it holds a pidfd on the process, so the pid is still the
// process's: one that exited meanwhile needs none.
func (p *process) setOOMScoreAdj(ctx context.Context, adj int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pid := p.Pid()
	if p.pidfd < 0 || pid <= 0 {
		return
	}
	err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", []byte(strconv.Itoa(adj)), 0)
	if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ESRCH) {
		log.G(ctx).WithError(err).WithField("pid", pid).Warn("proxmox-lxc: set the process's oom_score_adj (process.oomScoreAdj)")
	}
}

// setPid records the attached process's pid and holds a pidfd on it, so a signal never
// reaches another process that got its pid after it was reaped. The helper may have
// reaped a short-lived process before the pidfd was opened: the pidfd counts only if the
// process it names is the helper's child (a pid held by the shim's unreaped child).
func (p *process) setPid(pid, helper int) {
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		if ppid(pid) == helper {
			p.mu.Lock()
			p.pidfd = fd
			p.mu.Unlock()
		} else {
			unix.Close(fd)
		}
	}
	p.SetPid(pid)
}

// ppid is the parent of process pid, 0 when it is gone.
func ppid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// attachConsole hands the pty master the process sent (a pty of the CT's devpts, as
// lxc-attach makes) to its IO.
func (p *process) attachConsole(ctx context.Context, ch <-chan lxcstart.Received) error {
	if err := lxcstart.AttachConsole(ctx, p.IO(), ch, &p.pendingSize, 5*time.Second); err != nil {
		return fmt.Errorf("receive its terminal: %w", err)
	}
	return nil
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
	if p.pidfd >= 0 {
		err = unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
	} else {
		// no pidfd: the process was gone by the time it was reported
		err = unix.ESRCH
	}
	p.mu.Unlock()
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("process %s has exited: %w", p.ID(), errdefs.ErrNotFound)
	}
	return err
}

// execRecord is lxcri-start's spec record for an attached process, built by lxcstart as
// the lxc backend builds its execs': everything taken from the spec reaches the helper
// through a pipe, never its argv (/proc/PID/cmdline is world-readable), and the helper
// sets the process's capabilities, no_new_privs, rlimits and oom_score_adj after the
// attach. The attach itself leaves a process with the CT's whole capability set, which
// no spec asked for; so, as under runc, an init without capabilities in its spec gets
// none, and an exec without them gets the init's (init is the task's init's spec). tty
// is whether the process's IO is a terminal.
func execRecord(p, init *specs.Process, tty bool) ([]byte, error) {
	q := *p
	q.Terminal = tty
	// The attached process cannot set its own oom_score_adj: after liblxc's attach it is
	// not dumpable, so its /proc files belong to the host's root. The shim sets it from
	// the host once the process runs (setOOMScoreAdj).
	q.OOMScoreAdj = nil
	if q.Capabilities == nil {
		q.Capabilities = &specs.LinuxCapabilities{}
		if init != nil && init.Capabilities != nil {
			q.Capabilities = init.Capabilities
		}
	}
	return lxcstart.ExecSpec(&q)
}

// helper is one run of `lxcri-start exec`.
type helper struct {
	pid     int
	exit    chan int // the helper's exit status: the process's
	st      int
	done    chan struct{}
	reportR *os.File
	specW   *os.File
	console *os.File // the shim's end of the console socket (terminal only)
}

// startHelper starts lxcri-start's exec mode for CT name with the process's stdio. It
// waits for its spec record (send).
func startHelper(path, name, lxcPath string, pio *runtime.IO, exits *runtime.ExitWatcher) (_ *helper, retErr error) {
	var closeAfter []*os.File
	defer func() {
		for _, f := range closeAfter {
			f.Close()
		}
	}()
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	closeAfter = append(closeAfter, reportW)
	specR, specW, err := os.Pipe()
	if err != nil {
		reportR.Close()
		return nil, err
	}
	closeAfter = append(closeAfter, specR)
	h := &helper{exit: make(chan int, 1), done: make(chan struct{}), reportR: reportR, specW: specW}
	defer func() {
		if retErr != nil {
			h.close()
		}
	}()
	cmd := exec.Command(path, lxcstart.Args("exec", name, lxcPath)...)
	cmd.Dir = "/"
	// fd 3: the report; fd 4: the console socket; fd 6: the spec record
	cmd.ExtraFiles = []*os.File{reportW, nil, nil, specR}
	// Its own session: it must not get the shim's signals, nor a terminal of the shim's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	terminal := pio != nil && pio.Terminal()
	if terminal {
		// The attached process allocates its pty from the CT's devpts and sends the master
		// over fd 4.
		parent, child, err := lxcstart.ConsoleSocket()
		if err != nil {
			return nil, fmt.Errorf("console socket: %w", err)
		}
		h.console = parent
		closeAfter = append(closeAfter, child)
		cmd.ExtraFiles[1] = child
	}
	if terminal || pio == nil {
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		closeAfter = append(closeAfter, null)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	} else {
		pio.Set(cmd)
	}
	ch, err := exits.Start(cmd)
	if !terminal && pio != nil {
		pio.CloseAfterStart()
	}
	if err != nil {
		return nil, err
	}
	h.pid = cmd.Process.Pid
	go func() {
		h.st = <-ch
		close(h.done)
		h.exit <- h.st
	}()
	return h, nil
}

// send writes the spec record; the helper reads it to its end before anything else.
func (h *helper) send(record []byte) {
	w := h.specW
	h.specW = nil
	go lxcstart.SendSpec(w, record)
}

func (h *helper) kill() {
	select {
	case <-h.done:
	default:
		syscall.Kill(h.pid, syscall.SIGKILL)
	}
}

func (h *helper) close() {
	if h.specW != nil {
		h.specW.Close()
		h.specW = nil
	}
	if h.reportR != nil {
		h.reportR.Close()
		h.reportR = nil
	}
	if h.console != nil {
		h.console.Close()
		h.console = nil
	}
}

func (h *helper) status() int {
	select {
	case <-h.done:
		return h.st
	default:
		return -1
	}
}

// report reads the helper's report to its end: "pid N" once the process exists, then
// end of file when it runs its program (the report's fd is close-on-exec) or an
// "error ..." line when it could not.
func (h *helper) report(ctx context.Context) (pid int, errMsg string, err error) {
	type line struct {
		s   string
		eof bool
	}
	lines := make(chan line)
	stop := make(chan struct{})
	defer close(stop)
	r := h.reportR
	h.reportR = nil
	go func() {
		defer r.Close()
		s := bufio.NewScanner(r)
		for {
			l := line{eof: !s.Scan()}
			if !l.eof {
				l.s = s.Text()
			}
			select {
			case lines <- l:
			case <-stop:
				return
			}
			if l.eof {
				return
			}
		}
	}()
	for {
		select {
		case l := <-lines:
			if l.eof {
				return pid, errMsg, nil
			}
			// An exec'ed process has no configuration for liblxc to refuse: an
			// "invalid" line is not the exec mode's.
			switch r := lxcstart.ParseReport(l.s); {
			case r.Kind == lxcstart.Pid && pid == 0:
				pid = r.Pid
			case r.Kind == lxcstart.Error && errMsg == "":
				errMsg = r.Msg
			}
		case <-ctx.Done():
			// The reader ends when the helper, killed, closes its end.
			return pid, errMsg, ctx.Err()
		}
	}
}

// receiveConsole receives the pty master the process sends, sizes it (size) and lets the
// process go on (it waits for a byte). Nil without a terminal.
func (h *helper) receiveConsole(size func(console.Console)) <-chan lxcstart.Received {
	if h.console == nil {
		return nil
	}
	sock := h.console
	h.console = nil
	return lxcstart.ReceiveConsole(sock, size)
}
