package lxcstart

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// ConsoleSocket makes the socket pair an exec'ed process with a terminal sends its pty
// master over: the shim keeps parent, the helper gets child as ConsoleFD. Both are
// close-on-exec (the child's end reaches the helper through exec.Cmd.ExtraFiles).
func ConsoleSocket() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "console-socket"), os.NewFile(uintptr(fds[1]), "console-socket-child"), nil
}

// RecvConsole receives the pty master the process sends over sock (SCM_RIGHTS).
func RecvConsole(sock *os.File) (console.Console, error) {
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

// ReleaseConsole lets the process go on once the shim has its terminal (and sized it):
// it waits for one byte on the socket before it runs its program.
func ReleaseConsole(sock *os.File) error {
	_, err := sock.Write([]byte{0})
	return err
}

// Received is the terminal an exec'ed process sent, or why none came.
type Received struct {
	Console console.Console
	Err     error
}

// ReceiveConsole receives the pty master the process sends over sock in the background,
// sizes it (size) and releases the process (it waits for that before it runs its
// program, so its program starts with the size the client asked for); sock is closed
// after. The channel gets the one result.
func ReceiveConsole(sock *os.File, size func(console.Console)) <-chan Received {
	ch := make(chan Received, 1)
	go func() {
		defer sock.Close()
		c, err := RecvConsole(sock)
		if err == nil {
			size(c)
			if err := ReleaseConsole(sock); err != nil {
				// The process is gone: the helper's exit says why.
				log.L.WithError(err).Warn("release the exec'ed process after its terminal")
			}
		}
		ch <- Received{c, err}
	}()
	return ch
}

// ConsoleIO is where an exec'ed process's terminal goes: the process's stdio
// (runtime.IO), which relays between the terminal and the client.
type ConsoleIO interface {
	AttachConsole(ctx context.Context, c console.Console) error
	Resize(ws console.WinSize) error
}

// AttachConsole waits for ReceiveConsole's result (at most timeout: a process that
// reported its pid sends its terminal right after, or never), hands the terminal to io
// and resizes it to the size pending kept meanwhile (asked after ReceiveConsole sized it).
func AttachConsole(ctx context.Context, io ConsoleIO, ch <-chan Received, pending *PendingSize, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	var r Received
	select {
	case r = <-ch:
	case <-t.C:
		return errors.New("timed out")
	}
	if r.Err != nil {
		return r.Err
	}
	if err := io.AttachConsole(ctx, r.Console); err != nil {
		return err
	}
	if ws := pending.Attached(); ws != nil {
		io.Resize(*ws)
	}
	return nil
}
