package lxcstart

import (
	"context"
	"os"
	"reflect"
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

// stdio stands for the process's IO: it records the terminal it gets and its resizes.
type stdio struct {
	c       console.Console
	resizes []console.WinSize
}

func (s *stdio) AttachConsole(_ context.Context, c console.Console) error {
	s.c = c
	return nil
}

func (s *stdio) Resize(ws console.WinSize) error {
	s.resizes = append(s.resizes, ws)
	return s.c.Resize(ws)
}

// TestAttachConsole: the terminal the process sends reaches the process's IO sized
// before the process is released, then at the size asked meanwhile; a process that sends
// none is an error.
func TestAttachConsole(t *testing.T) {
	early, late := console.WinSize{Width: 100, Height: 30}, console.WinSize{Width: 120, Height: 40}
	for _, tc := range []struct {
		name string
		// send plays the process's side: nil sends nothing and keeps the socket open.
		send func(t *testing.T, child *os.File)
		// resize, when set, is asked after the terminal was sized, before it is attached.
		resize      *console.WinSize
		wantResizes []console.WinSize
		wantSize    console.WinSize
		wantErr     string
	}{
		{name: "sized, then released", send: sendPty, wantSize: early},
		{name: "resized meanwhile", send: sendPty, resize: &late, wantResizes: []console.WinSize{late}, wantSize: late},
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
			var pending PendingSize
			sized := make(chan bool, 1)
			ch := ReceiveConsole(parent, func(c console.Console) {
				sized <- c.Resize(early) == nil
			})
			timeout := time.Minute
			if tc.send != nil {
				tc.send(t, child)
			} else {
				timeout = time.Millisecond
			}
			if tc.resize != nil {
				<-sized
				sized <- true
				pending.Keep(*tc.resize)
			}
			io := &stdio{}
			err = AttachConsole(context.Background(), io, ch, &pending, timeout)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer io.c.Close()
			// The size came before the release: the process starts with it.
			if !<-sized {
				t.Error("the terminal was not sized")
			}
			b := make([]byte, 2)
			if n, err := child.Read(b); err != nil || n != 1 || b[0] != 0 {
				t.Errorf("the process read %d %q %v, want the release byte", n, b[:n], err)
			}
			if !reflect.DeepEqual(io.resizes, tc.wantResizes) {
				t.Errorf("resizes %v, want %v", io.resizes, tc.wantResizes)
			}
			if ws, err := io.c.Size(); err != nil || ws != tc.wantSize {
				t.Errorf("size %+v, %v; want %+v", ws, err, tc.wantSize)
			}
			if pending.Keep(early) {
				t.Error("the terminal is attached, yet a size is still kept for it")
			}
		})
	}
}
