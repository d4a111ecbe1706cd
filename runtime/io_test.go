package runtime

import (
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/fifo"
)

// TestCloseStdinKeepsWrittenData: bytes the client wrote before CloseIO reach the process,
// which then sees EOF and ends, and its output reaches the client.
func TestCloseStdinKeepsWrittenData(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "unit")
	dir := t.TempDir()
	stdin, stdout := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	for _, p := range []string{stdin, stdout} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The client side, as containerd's cio opens it.
	out, err := fifo.OpenFifo(ctx, stdout, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	in, err := fifo.OpenFifo(ctx, stdin, syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}

	pio, err := NewIO(ctx, "p", Stdio{Stdin: stdin, Stdout: stdout})
	if err != nil {
		t.Fatal(err)
	}
	defer pio.Close()
	cmd := exec.Command("cat")
	pio.Set(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pio.CloseAfterStart()

	payload := make([]byte, 200<<10) // more than a pipe holds
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(out)
		got <- b
	}()
	if _, err := in.Write(payload); err != nil {
		t.Fatal(err)
	}
	in.Close()
	if err := pio.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("cat did not see EOF after CloseStdin")
	}
	pio.Wait()
	select {
	case b := <-got:
		if len(b) != len(payload) {
			t.Fatalf("the process echoed %d bytes, want %d", len(b), len(payload))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("output not closed after the process exited")
	}
}

// TestStreams: a backend that pumps stdio itself reads the client's stdin from the stdin
// stream and its output reaches the client's fifos once it closes the output streams; a
// terminal is refused.
func TestStreams(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "unit")
	dir := t.TempDir()
	stdin, stdout, stderr := filepath.Join(dir, "in"), filepath.Join(dir, "out"), filepath.Join(dir, "err")
	for _, p := range []string{stdin, stdout, stderr} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := fifo.OpenFifo(ctx, stdout, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	errf, err := fifo.OpenFifo(ctx, stderr, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	in, err := fifo.OpenFifo(ctx, stdin, syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	pio, err := NewIO(ctx, "p", Stdio{Stdin: stdin, Stdout: stdout, Stderr: stderr})
	if err != nil {
		t.Fatal(err)
	}
	defer pio.Close()
	sin, sout, serr, err := pio.Streams()
	if err != nil || sin == nil || sout == nil || serr == nil {
		t.Fatalf("streams %v %v %v: %v", sin, sout, serr, err)
	}
	gotOut, gotErr := make(chan []byte, 1), make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(out); gotOut <- b }()
	go func() { b, _ := io.ReadAll(errf); gotErr <- b }()

	// The "remote process": echoes stdin to stdout, says bye on stderr.
	if _, err := in.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	in.Close()
	pio.CloseStdin()
	b, err := io.ReadAll(sin)
	if err != nil || string(b) != "ping" {
		t.Fatalf("stdin stream gave %q, %v", b, err)
	}
	sout.Write(b)
	serr.Write([]byte("bye"))
	sout.Close()
	serr.Close()
	pio.Wait()
	if b := <-gotOut; string(b) != "ping" {
		t.Errorf("stdout %q", b)
	}
	if b := <-gotErr; string(b) != "bye" {
		t.Errorf("stderr %q", b)
	}

	tty, err := NewIO(ctx, "t", Stdio{Terminal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	if _, _, _, err := tty.Streams(); !errdefs.IsNotImplemented(err) {
		t.Errorf("terminal streams: %v, want NotImplemented", err)
	}
}
