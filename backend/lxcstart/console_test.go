package lxcstart

import (
	"os"
	"strings"
	"testing"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"
)

func TestRecvConsole(t *testing.T) {
	for _, tc := range []struct {
		name string
		// send plays the process's side of the socket.
		send    func(t *testing.T, child *os.File)
		wantErr string
	}{
		{
			name: "pty master",
			send: func(t *testing.T, child *os.File) {
				m, _, err := console.NewPty()
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				if err := unix.Sendmsg(int(child.Fd()), []byte{0}, unix.UnixRights(int(m.Fd())), nil, 0); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:    "closed without a terminal",
			send:    func(*testing.T, *os.File) {},
			wantErr: "without sending a terminal",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, child, err := ConsoleSocket()
			if err != nil {
				t.Fatal(err)
			}
			defer parent.Close()
			tc.send(t, child)
			child.Close()
			c, err := RecvConsole(parent)
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
			// It is a terminal: sizing it works.
			if err := c.Resize(console.WinSize{Width: 80, Height: 24}); err != nil {
				t.Fatal(err)
			}
			if ws, err := c.Size(); err != nil || ws.Width != 80 || ws.Height != 24 {
				t.Errorf("size %+v, %v; want 80x24", ws, err)
			}
		})
	}
}

func TestReleaseConsole(t *testing.T) {
	parent, child, err := ConsoleSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	defer child.Close()
	if err := ReleaseConsole(parent); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	if n, err := child.Read(b); err != nil || n != 1 || b[0] != 0 {
		t.Errorf("read %d %q %v, want one NUL byte", n, b[:n], err)
	}
}
