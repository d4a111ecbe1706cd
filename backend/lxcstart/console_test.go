package lxcstart

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"
)

// sendPty plays an exec'ed process that made its pty: it sends the master over child.
func sendPty(t *testing.T, child *os.File) {
	m, _, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := unix.Sendmsg(int(child.Fd()), []byte{0}, unix.UnixRights(int(m.Fd())), nil, 0); err != nil {
		t.Fatal(err)
	}
}

// TestReceiveConsole: the terminal the process sends reaches the shim sized, and the
// process is released after; a process that sends none is an error.
func TestReceiveConsole(t *testing.T) {
	for _, tc := range []struct {
		name string
		// send plays the process's side: nil sends nothing and keeps the socket open.
		send    func(t *testing.T, child *os.File)
		wantErr string
	}{
		{name: "sized, then released", send: sendPty},
		{
			name:    "closed without a terminal",
			send:    func(_ *testing.T, child *os.File) { child.Close() },
			wantErr: "without sending a terminal",
		},
		{name: "nothing sent", wantErr: "timed out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, child, err := ConsoleSocket()
			if err != nil {
				t.Fatal(err)
			}
			defer child.Close()
			sized := false
			ch := ReceiveConsole(parent, func(c console.Console) {
				sized = c.Resize(console.WinSize{Width: 100, Height: 30}) == nil
			})
			timeout := time.Minute
			if tc.send != nil {
				tc.send(t, child)
			} else {
				timeout = time.Millisecond
			}
			c, err := AwaitConsole(ch, timeout)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// The size came before the release: the process starts with it.
			if !sized {
				t.Error("the terminal was not sized")
			}
			b := make([]byte, 2)
			if n, err := child.Read(b); err != nil || n != 1 || b[0] != 0 {
				t.Errorf("the process read %d %q %v, want the release byte", n, b[:n], err)
			}
			if ws, err := c.Size(); err != nil || ws.Width != 100 || ws.Height != 30 {
				t.Errorf("size %+v, %v; want 100x30", ws, err)
			}
		})
	}
}
