package proxmoxvm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/lxcri/lxcri/proxmox"
	"github.com/lxcri/lxcri/runtime"
)

// pollMax is how much output one poll fetches per stream: well below the agent's 16 MiB
// capture limit, so the launcher's answer is never truncated.
const pollMax = 1 << 20

// pollInterval is how often a running process's output is fetched.
const pollInterval = 100 * time.Millisecond

// process is the init or an exec'ed process, run in the guest by the launcher. Its stdio
// is pumped through the agent: stdin in chunks appended to a file the launcher feeds from,
// stdout and stderr fetched from the launcher's files as they grow.
type process struct {
	*runtime.Proc
	c    *container
	spec ProcessSpec
	dir  string // the launcher's directory for it in the guest
	init bool

	mu      sync.Mutex
	started bool
	// offsets of output already delivered (a restored init starts past what was sent)
	outOff, errOff int64
	cancel         context.CancelFunc
}

func (p *process) gst() *guest { return &guest{api: p.c.b.api, vmid: p.c.vmid} }

// Start runs an exec'ed process; the init starts with the container.
func (p *process) Start(ctx context.Context) error {
	if p.init {
		return fmt.Errorf("the init process starts with the container: %w", errdefs.ErrFailedPrecondition)
	}
	if p.c.init.Exited() || p.c.init.Pid() == 0 {
		return fmt.Errorf("container %s is not running: %w", p.c.id, errdefs.ErrFailedPrecondition)
	}
	return p.launch(ctx)
}

// launch writes the process's config into the guest, starts it through the launcher and
// begins pumping its stdio.
func (p *process) launch(ctx context.Context) error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return fmt.Errorf("process %s was started already: %w", p.ID(), errdefs.ErrFailedPrecondition)
	}
	p.started = true
	p.mu.Unlock()
	stdin, stdout, stderr, err := p.IO().Streams()
	if err != nil {
		return err
	}
	g := p.gst()
	cfg, err := json.Marshal(p.spec)
	if err != nil {
		return err
	}
	if _, err := g.check(ctx, nil, "mkdir", "-p", p.dir); err != nil {
		return err
	}
	if _, err := g.check(ctx, cfg, guestLauncher, "append", p.dir+"/config.json"); err != nil {
		return err
	}
	if stdin == nil {
		// no stdin: the process reads EOF at once
		if _, err := g.check(ctx, nil, guestLauncher, "append", p.dir+"/stdin.eof"); err != nil {
			return err
		}
	}
	st, err := g.run(ctx, nil, guestLauncher, "start", p.dir)
	if err != nil {
		return err
	}
	if st.ExitCode != 0 {
		msg := strings.TrimSpace(strings.TrimPrefix(string(st.Err), "lxcri-vm-launcher: "))
		return fmt.Errorf("start %q in VM %d: %s: %w", p.spec.Args[0], p.c.vmid, msg, errdefs.ErrFailedPrecondition)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(st.Out)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("the launcher in VM %d answered %q for a pid: %w", p.c.vmid, st.Out, errdefs.ErrUnknown)
	}
	p.SetPid(pid)
	p.pump(stdin, stdout, stderr)
	return nil
}

// adopt takes over a process that runs already (a restored init): its pid is in the
// launcher's directory, and its output is followed from where the checkpoint left it.
func (p *process) adopt(ctx context.Context) error {
	p.mu.Lock()
	p.started = true
	p.mu.Unlock()
	stdin, stdout, stderr, err := p.IO().Streams()
	if err != nil {
		return err
	}
	st, err := p.gst().check(ctx, nil, "cat", p.dir+"/pid")
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(st.Out)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("the restored init's pid file in VM %d holds %q: %w", p.c.vmid, st.Out, errdefs.ErrUnknown)
	}
	p.SetPid(pid)
	p.pump(stdin, stdout, stderr)
	return nil
}

// pump starts the stdin and output goroutines; the output one records the exit.
func (p *process) pump(stdin io.ReadCloser, stdout, stderr io.WriteCloser) {
	ctx, cancel := context.WithCancel(context.Background())
	p.mu.Lock()
	p.cancel = cancel
	p.mu.Unlock()
	if stdin != nil {
		go p.feed(ctx, stdin)
	}
	go func() {
		status := p.follow(ctx, stdout, stderr)
		if stdout != nil {
			stdout.Close()
		}
		if stderr != nil {
			stderr.Close()
		}
		cancel()
		if p.init {
			p.c.initExited()
		}
		p.SetExited(status)
	}()
}

// feed appends what containerd writes to the process's stdin, chunk by chunk, and marks
// its end.
func (p *process) feed(ctx context.Context, stdin io.ReadCloser) {
	defer stdin.Close()
	g := p.gst()
	buf := make([]byte, chunk)
	for {
		n, err := stdin.Read(buf)
		if n > 0 {
			if _, cerr := g.check(ctx, buf[:n], guestLauncher, "append", p.dir+"/stdin"); cerr != nil {
				log.G(ctx).WithError(cerr).Warn("proxmox-vm: stdin chunk not delivered")
				return
			}
		}
		if err != nil {
			break
		}
	}
	if _, err := g.check(ctx, nil, guestLauncher, "append", p.dir+"/stdin.eof"); err != nil {
		log.G(ctx).WithError(err).Warn("proxmox-vm: end of stdin not delivered")
	}
}

// follow fetches output until the process has exited and all of it was delivered, and
// returns the exit status. A VM that stops (or is gone) ends its processes as SIGKILL
// would.
func (p *process) follow(ctx context.Context, stdout, stderr io.Writer) int {
	g := p.gst()
	for {
		outOff, errOff := p.offsets()
		st, err := g.run(ctx, nil, guestLauncher, "poll", p.dir, strconv.FormatInt(outOff, 10), strconv.FormatInt(errOff, 10), strconv.Itoa(pollMax))
		if err != nil {
			if ctx.Err() != nil || vmStopped(err) {
				return 128 + int(syscall.SIGKILL)
			}
			// a paused VM's agent does not answer; anything else is retried too
			select {
			case <-ctx.Done():
				return 128 + int(syscall.SIGKILL)
			case <-time.After(pollInterval):
			}
			continue
		}
		p.deliver(stdout, st.Out, st.OutTruncated, "stdout")
		p.deliver(stderr, st.Err, st.ErrTruncated, "stderr")
		p.mu.Lock()
		p.outOff += int64(len(st.Out))
		p.errOff += int64(len(st.Err))
		p.mu.Unlock()
		if st.ExitCode == 3 && len(st.Out) < pollMax && len(st.Err) < pollMax {
			return p.exitStatus(ctx)
		}
		if len(st.Out) == pollMax || len(st.Err) == pollMax {
			continue
		}
		select {
		case <-ctx.Done():
			return 128 + int(syscall.SIGKILL)
		case <-time.After(pollInterval):
		}
	}
}

// offsets are how much of its stdout and stderr was delivered.
func (p *process) offsets() (int64, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.outOff, p.errOff
}

func (p *process) deliver(w io.Writer, b []byte, truncated bool, name string) {
	if truncated {
		// cannot happen below the agent's limit; never cut silently
		log.L.WithField("process", p.ID()).Errorf("proxmox-vm: the guest agent truncated the process's %s", name)
	}
	if w != nil && len(b) > 0 {
		w.Write(b)
	}
}

// exitStatus reads how the process ended: its exit code, or 128+signal.
func (p *process) exitStatus(ctx context.Context) int {
	st, err := p.gst().check(ctx, nil, guestLauncher, "status", p.dir)
	if err != nil {
		log.G(ctx).WithError(err).Warn("proxmox-vm: exit status unreadable")
		return 255
	}
	f := strings.Fields(string(st.Out))
	if len(f) == 2 {
		n, err := strconv.Atoi(f[1])
		if err == nil && f[0] == "exit" {
			return n
		}
		if err == nil && f[0] == "signal" {
			return 128 + n
		}
	}
	log.G(ctx).Warnf("proxmox-vm: process ended with %q", st.Out)
	return 255
}

// vmStopped: the VM does not run (any more) or is gone.
func vmStopped(err error) bool {
	var e *proxmox.Error
	if errdefs.IsNotFound(err) && !strings.Contains(err.Error(), "Invalid parameter 'pid'") {
		return true
	}
	return errors.As(err, &e) && (strings.Contains(e.Message, "is not running") || strings.Contains(e.Message, "No QEMU guest agent configured"))
}

// Kill signals the process in the guest; SIGKILL to the init stops the whole VM, as
// pulling the plug is the one kill no guest can ignore.
func (p *process) Kill(ctx context.Context, sig syscall.Signal) error {
	if p.Pid() == 0 || p.Exited() {
		return fmt.Errorf("process %s is not running: %w", p.ID(), errdefs.ErrNotFound)
	}
	if p.init && sig == syscall.SIGKILL {
		return p.c.b.api.StopVM(ctx, p.c.vmid)
	}
	st, err := p.gst().run(ctx, nil, guestLauncher, "kill", p.dir, strconv.Itoa(int(sig)))
	if err != nil {
		return err
	}
	if st.ExitCode != 0 {
		return fmt.Errorf("process %s: %s: %w", p.ID(), strings.TrimSpace(string(st.Err)), errdefs.ErrNotFound)
	}
	return nil
}

// stop ends the pumping of a process whose VM is going away.
func (p *process) stop() {
	p.mu.Lock()
	cancel := p.cancel
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}
