package runtime

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/console"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/fifo"
)

// TestProc: the shared process record keeps its pid, takes only the first exit, and
// releases its stdio on Delete.
func TestProc(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "unit")
	pio, err := NewIO(ctx, "p", Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	p := NewProc("p", pio)
	if p.ID() != "p" || p.IO() != pio || p.Pid() != 0 || p.Exited() {
		t.Fatalf("new proc: %s %v %d %v", p.ID(), p.IO(), p.Pid(), p.Exited())
	}
	p.SetPid(42)
	p.SetExited(3)
	p.SetExited(9) // only the first counts
	<-p.Done()
	if e := p.Exit(); e.Pid != 42 || e.Status != 3 || e.ExitedAt.IsZero() || !p.Exited() {
		t.Errorf("exit %+v", e)
	}
	if err := p.ResizePty(ctx, console.WinSize{Width: 80, Height: 24}); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("resize without a terminal: %v", err)
	}
	if err := p.CloseStdin(ctx); err != nil {
		t.Errorf("close stdin without stdin: %v", err)
	}
	if err := p.Delete(ctx); err != nil {
		t.Error(err)
	}
	if err := NewProc("q", nil).Delete(ctx); err != nil {
		t.Errorf("delete without stdio: %v", err)
	}
}

// TestIOLogFile: file:// stdout sends both streams of the process to one log file, made
// with its folder; a terminal cannot write to it.
func TestIOLogFile(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "unit")
	log := filepath.Join(t.TempDir(), "logs", "c.log")
	pio, err := NewIO(ctx, "p", Stdio{Stdout: "file://" + log, Stderr: "file://" + log})
	if err != nil {
		t.Fatal(err)
	}
	if pio.Terminal() || pio.Stdio().Stdout != "file://"+log || pio.RuncIO() == nil {
		t.Errorf("accessors: %v %v %v", pio.Terminal(), pio.Stdio(), pio.RuncIO())
	}
	cmd := exec.Command("sh", "-c", "echo out; echo err >&2")
	pio.Set(cmd)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pio.CloseAfterStart()
	pio.Wait()
	pio.Close()
	b, err := os.ReadFile(log)
	if err != nil || !strings.Contains(string(b), "out") || !strings.Contains(string(b), "err") {
		t.Errorf("log %q, %v", b, err)
	}
	if _, err := NewIO(ctx, "t", Stdio{Terminal: true, Stdout: "file://" + log}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("terminal to a file: %v, want InvalidArgument", err)
	}
	if _, err := NewIO(ctx, "u", Stdio{Stdout: "%zz"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("malformed stdout: %v, want InvalidArgument", err)
	}
}

// TestIOTerminalResizeBeforeConsole: containerd sizes a terminal before the process runs;
// the size is kept for the console.
func TestIOTerminalResizeBeforeConsole(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "unit")
	pio, err := NewIO(ctx, "t", Stdio{Terminal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pio.Close()
	if err := pio.Resize(console.WinSize{Width: 100, Height: 30}); err != nil {
		t.Fatal(err)
	}
	if pio.RuncIO() != nil {
		t.Error("a terminal has go-runc pipes")
	}
	pio.Set(exec.Command("true")) // no-op with a terminal
	if err := pio.CloseAfterStart(); err != nil {
		t.Error(err)
	}
}

// TestMountRootfsWithoutMounts: with no mounts the bundle's own rootfs is used; a bundle
// without one is the client's error. Unmounting what is not mounted is fine.
func TestMountRootfsWithoutMounts(t *testing.T) {
	bundle := t.TempDir()
	if _, err := MountRootfs(bundle, nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bundle without rootfs: %v, want InvalidArgument", err)
	}
	os.Mkdir(filepath.Join(bundle, "rootfs"), 0o755)
	got, err := MountRootfs(bundle, nil)
	if err != nil || got != filepath.Join(bundle, "rootfs") {
		t.Errorf("got %q, %v", got, err)
	}
	if err := UnmountRootfs(bundle); err != nil {
		t.Error(err)
	}
}

// TestIOConsole: a terminal process's pty master is copied to the stdout fifo and from the
// stdin fifo, and a size set before the console came is applied to it.
func TestIOConsole(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "unit")
	dir := t.TempDir()
	stdin, stdout := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	for _, p := range []string{stdin, stdout} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := fifo.OpenFifo(ctx, stdout, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	in, err := fifo.OpenFifo(ctx, stdin, syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	pio, err := NewIO(ctx, "t", Stdio{Stdin: stdin, Stdout: stdout, Terminal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pio.Close()
	if err := pio.Resize(console.WinSize{Width: 123, Height: 45}); err != nil {
		t.Fatal(err)
	}
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	if err := pio.AttachConsole(ctx, master); err != nil {
		t.Fatal(err)
	}
	if ws, err := master.Size(); err != nil || ws.Width != 123 || ws.Height != 45 {
		t.Errorf("size %+v %v, want the one set before the console", ws, err)
	}
	if err := pio.Resize(console.WinSize{Width: 80, Height: 24}); err != nil {
		t.Fatal(err)
	}
	// The "process" writes on its terminal; the client reads it from the fifo.
	if _, err := slave.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	got := ""
	for !strings.Contains(got, "hello") {
		n, err := out.Read(buf)
		if err != nil {
			t.Fatalf("read stdout: %v (got %q)", err, got)
		}
		got += string(buf[:n])
	}
	// The client types; the process reads it from its terminal.
	if _, err := in.Write([]byte("typed\n")); err != nil {
		t.Fatal(err)
	}
	line := ""
	for !strings.Contains(line, "typed") {
		n, err := slave.Read(buf)
		if err != nil {
			t.Fatalf("read terminal: %v (got %q)", err, line)
		}
		line += string(buf[:n])
	}
}
