package shim

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
)

// TestDebugSocket: the manager's debug socket is where containerd's convention puts it,
// replaces a stale file, survives the manager (no unlink on close) and serves the
// goroutine profile from the file handed to the shim server.
func TestDebugSocket(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "ns1")
	dir := t.TempDir()
	want, err := shim.CreateSocketAddress(ctx, dir, "/run/c/containerd.sock", "pod1", true)
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(want, "unix://")
	if err := os.WriteFile(path, nil, 0o600); err != nil { // a dead shim's leftover
		t.Fatal(err)
	}
	f, addr, err := debugSocket(ctx, dir, "/run/c/containerd.sock", "pod1")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if addr != want {
		t.Errorf("debug socket %s, want %s", addr, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("debug socket file after the manager closed its listener: %v, %v", fi, err)
	}
	l, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := newDebugServer()
	go srv.Serve(l)
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	resp, err := hc.Get("http://shim/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.HasPrefix(string(b), "goroutine profile: total ") {
		t.Errorf("goroutine profile: %.80q", b)
	}
}
