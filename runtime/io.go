package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/process"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/fifo"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// Stdio names where a process's standard streams go, as containerd passes them: fifo paths,
// or URIs (binary:// for a logging binary, file:// for a log file).
type Stdio struct {
	Stdin    string
	Stdout   string
	Stderr   string
	Terminal bool
}

// drainTimeout bounds how long an exited process's output is drained: a daemonized
// grandchild may hold the pipes open forever, and containerd must still see the exit.
const drainTimeout = 2 * time.Second

// stdinDrainTimeout bounds how long CloseStdin waits for data already in the stdin fifo
// to reach the process.
const stdinDrainTimeout = time.Second

// IO connects a process's stdio to what containerd asked for. Without a terminal, the child
// gets pipe ends (Set) whose other ends the shim copies to and from the fifos; a logging
// binary or a file receives stdout and stderr directly. With a terminal, the backend hands
// over the pty master (AttachConsole).
type IO struct {
	stdio Stdio
	id    string
	ns    string

	rio runc.IO // nil with a terminal

	mu       sync.Mutex
	console  console.Console
	stdin    io.Closer        // the stdin fifo, closed by CloseStdin
	stdinEnd chan struct{}    // closed when the stdin copy has ended
	pending  *console.WinSize // a resize that came before the console
	closers  []io.Closer
	wg       sync.WaitGroup // output copiers
}

// NewIO opens the stdio of process id.
func NewIO(ctx context.Context, id string, stdio Stdio) (_ *IO, retErr error) {
	ns, _ := namespaces.Namespace(ctx)
	i := &IO{stdio: stdio, id: id, ns: ns}
	defer func() {
		if retErr != nil {
			i.Close()
		}
	}()
	if stdio.Terminal {
		if stdio.Stdout != "" {
			if u, err := url.Parse(stdio.Stdout); err == nil && u.Scheme != "" && u.Scheme != "fifo" {
				return nil, fmt.Errorf("a terminal cannot write to a %s stdout: %w", u.Scheme, errdefs.ErrInvalidArgument)
			}
		}
		return i, nil
	}
	if stdio.Stdin == "" && stdio.Stdout == "" && stdio.Stderr == "" {
		// No stdio at all (a CRI sandbox, cio.NullIO): /dev/null, so that nothing holds a
		// pipe a runtime CLI's own output is read from.
		rio, err := runc.NewNullIO()
		if err != nil {
			return nil, err
		}
		i.rio = rio
		return i, nil
	}
	u, err := url.Parse(stdio.Stdout)
	if err != nil {
		return nil, fmt.Errorf("stdout %q: %v: %w", stdio.Stdout, err, errdefs.ErrInvalidArgument)
	}
	switch u.Scheme {
	case "binary", "binary-v2":
		rio, err := process.NewBinaryIO(ctx, id, u)
		if err != nil {
			return nil, fmt.Errorf("start logging binary %s: %w", u.Path, err)
		}
		i.rio = rio
	case "file":
		if err := os.MkdirAll(dirOf(u.Path), 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(u.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log file %s: %w", u.Path, err)
		}
		i.closers = append(i.closers, f)
		i.rio = &fileIO{f: f}
	case "", "fifo":
		rio, err := runc.NewPipeIO(0, 0, func(o *runc.IOOption) {
			o.OpenStdin = stdio.Stdin != ""
			o.OpenStdout = stdio.Stdout != ""
			o.OpenStderr = stdio.Stderr != ""
		})
		if err != nil {
			return nil, err
		}
		i.rio = rio
		if err := i.copyOutput(ctx, rio.Stdout(), stdio.Stdout); err != nil {
			return nil, err
		}
		if err := i.copyOutput(ctx, rio.Stderr(), stdio.Stderr); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("stdout scheme %q is not supported (fifo, binary, file): %w", u.Scheme, errdefs.ErrInvalidArgument)
	}
	if stdio.Stdin != "" && i.rio.Stdin() != nil {
		if err := i.copyStdin(ctx, i.rio.Stdin()); err != nil {
			return nil, err
		}
	}
	return i, nil
}

func dirOf(p string) string {
	for j := len(p) - 1; j > 0; j-- {
		if p[j] == '/' {
			return p[:j]
		}
	}
	return "/"
}

// Terminal tells whether the process gets a pty.
func (i *IO) Terminal() bool { return i.stdio.Terminal }

// Stdio is what containerd asked for.
func (i *IO) Stdio() Stdio { return i.stdio }

// RuncIO exposes the pipes in go-runc's shape, for backends driving a runc-compatible CLI.
// It is nil with a terminal.
func (i *IO) RuncIO() runc.IO { return i.rio }

// Set wires the child ends of the pipes into cmd. No-op with a terminal.
func (i *IO) Set(cmd *exec.Cmd) {
	if i.rio != nil {
		i.rio.Set(cmd)
	}
}

// Streams is the process's stdio as plain streams, for a backend that pumps them over a
// transport of its own (a remote API) instead of handing fds to a local child: it copies
// Stdin (nil: none) to the process and the process's output to Stdout and Stderr (nil:
// discarded), then closes the two writers when the process has ended, as a child closes
// its ends; CloseAfterStart then has nothing to do. Local backends use Set, which hands
// the same ends to the child without a copy. A terminal is not offered as streams.
func (i *IO) Streams() (stdin io.ReadCloser, stdout, stderr io.WriteCloser, err error) {
	if i.rio == nil {
		return nil, nil, nil, fmt.Errorf("the stdio of %s is a terminal, which is not offered as streams: %w", i.id, errdefs.ErrNotImplemented)
	}
	var cmd exec.Cmd
	i.rio.Set(&cmd)
	if r, ok := cmd.Stdin.(io.ReadCloser); ok {
		stdin = r
	}
	if w, ok := cmd.Stdout.(io.WriteCloser); ok {
		stdout = w
	}
	if w, ok := cmd.Stderr.(io.WriteCloser); ok && cmd.Stderr != cmd.Stdout {
		stderr = w
	} else if ok {
		stderr = nopCloser{w}
	}
	return stdin, stdout, stderr, nil
}

// nopCloser lets stdout and stderr share one file (a log file) without closing it twice.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// CloseAfterStart closes the shim's copies of the child ends once the child has them, so
// that output copying ends when the process (and its children) close theirs.
func (i *IO) CloseAfterStart() error {
	if sc, ok := i.rio.(runc.StartCloser); ok {
		return sc.CloseAfterStart()
	}
	return nil
}

// AttachConsole takes the pty master of a terminal process and copies it to and from the
// fifos. The IO owns the console from then on.
func (i *IO) AttachConsole(ctx context.Context, c console.Console) error {
	i.mu.Lock()
	i.console = c
	i.closers = append(i.closers, c)
	ws := i.pending
	i.pending = nil
	i.mu.Unlock()
	if ws != nil {
		if err := c.Resize(*ws); err != nil {
			return fmt.Errorf("resize terminal: %w", err)
		}
	}
	if i.stdio.Stdin != "" {
		if err := i.copyStdin(ctx, c); err != nil {
			return err
		}
	}
	return i.copyOutput(ctx, c, i.stdio.Stdout)
}

// Resize changes the window size of the process's terminal.
func (i *IO) Resize(ws console.WinSize) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.console == nil {
		if !i.stdio.Terminal {
			return fmt.Errorf("process has no terminal: %w", errdefs.ErrFailedPrecondition)
		}
		// containerd sizes the terminal before the process starts: apply it once the
		// backend hands over the console.
		i.pending = &ws
		return nil
	}
	return i.console.Resize(ws)
}

// CloseStdin closes the process's stdin: a process reading it sees EOF once the data sent
// so far is consumed. Bytes the client wrote before it asked (CloseIO) may still sit in
// the fifo: wait, briefly, until the copy has taken them, rather than drop them.
func (i *IO) CloseStdin() error {
	i.mu.Lock()
	in, end := i.stdin, i.stdinEnd
	i.stdin = nil
	i.mu.Unlock()
	if in == nil {
		return nil
	}
	deadline := time.Now().Add(stdinDrainTimeout)
	for unread(in) > 0 && time.Now().Before(deadline) {
		select {
		case <-end:
			return in.Close()
		case <-time.After(time.Millisecond):
		}
	}
	return in.Close()
}

// unread is how many bytes wait in a fifo (FIONREAD), 0 when that cannot be told.
func unread(f io.Closer) int {
	sc, ok := f.(syscall.Conn)
	if !ok {
		return 0
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	// Control waits while the fifo is not open yet (no client ever wrote to it): that
	// means nothing to drain. The waiting call ends when the fifo is closed.
	ch := make(chan int, 1)
	go func() {
		n := 0
		raw.Control(func(fd uintptr) {
			n, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) // FIONREAD
		})
		ch <- n
	}()
	select {
	case n := <-ch:
		return n
	case <-time.After(10 * time.Millisecond):
		return 0
	}
}

// Wait waits for the output to be copied after the process exited, at most drainTimeout.
func (i *IO) Wait() {
	done := make(chan struct{})
	go func() {
		i.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		log.L.WithField("id", i.id).Warn("output still open after the process exited; closing it")
		i.closeAll()
		<-done
	}
}

// Close releases every pipe, fifo, console and logging binary of the process.
func (i *IO) Close() error {
	i.CloseStdin()
	return i.closeAll()
}

func (i *IO) closeAll() error {
	i.mu.Lock()
	closers := i.closers
	i.closers = nil
	rio := i.rio
	i.rio = nil
	i.mu.Unlock()
	var errs []error
	if rio != nil {
		errs = append(errs, rio.Close())
	}
	for _, c := range closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// copyStdin copies the stdin fifo into w; when the client closes stdin (CloseIO) the copy
// ends and w is closed, so the process sees EOF.
func (i *IO) copyStdin(ctx context.Context, w io.WriteCloser) error {
	in, err := fifo.OpenFifo(context.WithoutCancel(ctx), i.stdio.Stdin, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("open stdin fifo %s: %w", i.stdio.Stdin, err)
	}
	end := make(chan struct{})
	i.mu.Lock()
	i.stdin, i.stdinEnd = in, end
	i.mu.Unlock()
	_, isConsole := w.(console.Console)
	go func() {
		defer close(end)
		buf := make([]byte, 32<<10)
		io.CopyBuffer(w, in, buf)
		if !isConsole {
			w.Close()
		}
		in.Close()
	}()
	return nil
}

// copyOutput copies r into the fifo at path until r ends.
func (i *IO) copyOutput(ctx context.Context, r io.Reader, path string) error {
	if r == nil || path == "" {
		return nil
	}
	w, err := fifo.OpenFifo(context.WithoutCancel(ctx), path, syscall.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open output fifo %s: %w", path, err)
	}
	// Keep a reader open on our own fifo so that a client that goes away (ctr detaching)
	// does not make the process die of SIGPIPE.
	keep, err := fifo.OpenFifo(context.WithoutCancel(ctx), path, syscall.O_RDONLY, 0)
	if err != nil {
		w.Close()
		return fmt.Errorf("open output fifo %s: %w", path, err)
	}
	i.wg.Add(1)
	go func() {
		defer i.wg.Done()
		buf := make([]byte, 32<<10)
		io.CopyBuffer(w, r, buf)
		// The client waits for EOF on its fifo before it deletes the process: close our
		// ends as soon as the process's output ends.
		w.Close()
		keep.Close()
	}()
	return nil
}

// fileIO sends stdout and stderr to one log file and gives no stdin.
type fileIO struct{ f *os.File }

func (f *fileIO) Close() error          { return nil } // the IO closes the file
func (f *fileIO) Stdin() io.WriteCloser { return nil }
func (f *fileIO) Stdout() io.ReadCloser { return nil }
func (f *fileIO) Stderr() io.ReadCloser { return nil }
func (f *fileIO) Set(cmd *exec.Cmd)     { cmd.Stdout, cmd.Stderr = f.f, f.f }
