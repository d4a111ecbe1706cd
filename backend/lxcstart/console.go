package lxcstart

import (
	"errors"
	"os"

	"github.com/containerd/console"
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
