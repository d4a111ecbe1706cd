package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lxcri/lxcri/proxmox"
	"github.com/lxcri/lxcri/runtime"
)

// pvesim serves until SIGTERM, having written the CA, the secret and a [proxmox] section
// that lxcri's loader takes and its client uses as they are.
func TestServeUntilStopped(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pvesim")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--dir", dir, "--auth-delay", "0")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	}()

	// the file as lxcri loads it (strictly), for the proxmox-lxc backend on this host
	cfg := runtime.DefaultConfig()
	for {
		if _, err := os.Stat(filepath.Join(dir, "lxcri.toml")); err == nil {
			break
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("pvesim exited: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := cfg.MergeFile(filepath.Join(dir, "lxcri.toml"), true); err != nil {
		t.Fatal(err)
	}
	if err := proxmox.Validate(&cfg.Proxmox); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	client, err := proxmox.New(ctx, &cfg.Proxmox)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(client.LXCPath()); err != nil || !fi.IsDir() || client.LXCPath() != filepath.Join(dir, "lxc") {
		t.Fatalf("lxc_path %q is not the emulator's LXC path: %v", client.LXCPath(), err)
	}
	if v, err := client.Version(ctx); err != nil || v.Release == "" {
		t.Fatalf("version: %+v %v", v, err)
	}
	if cts, err := client.CTs(ctx); err != nil || len(cts) != 0 {
		t.Fatalf("CTs on node %s: %v %v", client.Node(), cts, err)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	err = <-exited
	stopped = true
	if err != nil {
		t.Fatalf("pvesim after SIGTERM: %v", err)
	}
}
