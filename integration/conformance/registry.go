//go:build linux

package conformance

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lxcri/lxcri/integration/inherit"
)

// Registry is a local OCI distribution registry (distribution's cmd/registry) on a loopback
// port. Image names start with Host; containerd's resolver talks plain HTTP to localhost.
type Registry struct {
	// Host is "localhost:PORT", the registry part of every image name it serves.
	Host string
	// Dir holds its storage, configuration and log.
	Dir string
}

// StartRegistry starts the registry binary bin with its storage in a temporary folder, and
// registers its stop with t.Cleanup.
func StartRegistry(t testing.TB, bin string) *Registry {
	t.Helper()
	dir, err := os.MkdirTemp("", "lxcri-registry-")
	if err != nil {
		t.Fatalf("conformance: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	port, err := freePort()
	if err != nil {
		t.Fatalf("conformance: registry port: %v", err)
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: 127.0.0.1:%d
`, filepath.Join(dir, "data"), port)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatalf("conformance: %v", err)
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatalf("conformance: %v", err)
	}
	defer logf.Close()
	inherit.CloseOnExec()
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("conformance: starting registry %s: %v", bin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	r := &Registry{Host: "localhost:" + strconv.Itoa(port), Dir: dir}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if r.serving(ctx) {
			return r
		}
		select {
		case err := <-done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("conformance: registry exited at start (%v):\n%s", err, b)
		case <-ctx.Done():
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("conformance: registry did not serve on %s within 30s:\n%s", r.Host, b)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *Registry) serving(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Host+"/v2/", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// freePort returns a loopback TCP port nobody listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
