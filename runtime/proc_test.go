package runtime

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/console"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
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
