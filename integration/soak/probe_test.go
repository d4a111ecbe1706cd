//go:build linux

package soak

import (
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lxcri/lxcri/integration/harness"
)

// TestShimProbeCounts: the probe's readings move with what a process holds, so that a
// shim that keeps goroutines or fds shows as growth (this test process stands in for a
// shim, serving pprof on a socket as the shim does).
func TestShimProbeCounts(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "debug")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	srv := &http.Server{Handler: m}
	go srv.Serve(l)
	defer srv.Close()

	p := newShimProbe(os.Getpid(), sock)
	defer p.close()
	base, _, err := p.floor(3)
	if err != nil {
		t.Fatal(err)
	}
	if base.Goroutines < 1 || base.FDs < 3 || base.RSS == 0 {
		t.Fatalf("implausible reading %+v", base)
	}
	// Held until the end of the test: 5 goroutines and 3 fds more than at base.
	stop := make(chan struct{})
	defer close(stop)
	for i := 0; i < 5; i++ {
		go func() { <-stop }()
	}
	for i := 0; i < 3; i++ {
		f, err := os.Open("/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
	}
	end, _, err := p.settle(base, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if g := end.Goroutines - base.Goroutines; g != 5 {
		t.Errorf("goroutine growth %d, want 5 (base %+v, end %+v)", g, base, end)
	}
	if f := end.FDs - base.FDs; f != 3 {
		t.Errorf("fd growth %d, want 3 (base %+v, end %+v)", f, base, end)
	}
}

// TestLeakCounting: each kind of leftover a soak checks for is counted when it appears
// between two snapshots, and only then.
func TestLeakCounting(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("TestLeakCounting needs root (a mount and cgroups); run it as root")
	}
	root, state := t.TempDir(), t.TempDir()
	prefix := "soak-" + randHex(3) + "-"
	sc := &scope{
		env:      &harness.Env{Root: root, Socket: filepath.Join(root, "containerd.sock")},
		ns:       "ns1",
		prefix:   prefix,
		stateDir: state,
		fifoDir:  filepath.Join(root, "fifo"),
	}
	datasets := []string{"pool/a"}
	before := sc.snapshot(func() []string { return datasets })
	if l := leaks(before, sc.snapshot(func() []string { return datasets })); l.Total() != 0 {
		t.Fatalf("nothing changed, yet counted %v", l)
	}

	mnt := filepath.Join(root, "mnt")
	os.MkdirAll(mnt, 0o700)
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)
	// A cgroup in every hierarchy, named as LXC names its monitor's.
	var cgs []string
	for _, h := range cgroupRoots(t) {
		cg := filepath.Join(h, "lxc.monitor."+prefix+"c1")
		if err := os.Mkdir(cg, 0o755); err != nil {
			t.Fatal(err)
		}
		cgs = append(cgs, cg)
	}
	defer func() {
		for _, cg := range cgs {
			syscall.Rmdir(cg)
		}
	}()
	lxcDir := filepath.Join(state, "ns1", prefix+"c1")
	os.MkdirAll(lxcDir, 0o700)
	os.WriteFile(filepath.Join(lxcDir, "config"), nil, 0o600)
	os.MkdirAll(sc.fifoDir, 0o700)
	if err := syscall.Mkfifo(filepath.Join(sc.fifoDir, "stdout"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(root, "sock")
	os.WriteFile(sock, nil, 0o600)
	sc.sockets = []string{sock}
	// A process naming the state folder, as an LXC monitor does, and a shim of this
	// containerd.
	defer execSleep(t, "sh", state)()
	defer execSleep(t, harness.ShimBinary, "-address", sc.env.Socket)()
	datasets = append(datasets, "pool/b")

	l := leaks(before, sc.snapshot(func() []string { return datasets }))
	want := map[string]int{
		"mounts": 1, "cgroups": len(cgs), "lxc containers": 1, "container state": 1,
		"processes": 1, "shims": 1, "sockets": 1, "fifos": 1, "datasets": 1,
	}
	for k, n := range want {
		if len(l[k]) != n {
			t.Errorf("%s: counted %d (%q), want %d", k, len(l[k]), l[k], n)
		}
	}
	if len(cgs) < 2 {
		t.Errorf("%d cgroup hierarchies found, want every v1 hierarchy and the cgroup2 tree", len(cgs))
	}
}

// cgroupRoots lists the mounted cgroup hierarchies (v1 and v2) that take new cgroups.
func cgroupRoots(t *testing.T) []string {
	var out []string
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		fs := strings.Fields(post)
		f := strings.Fields(pre)
		if len(fs) > 0 && (fs[0] == "cgroup" || fs[0] == "cgroup2") && len(f) > 4 && !contains(out, f[4]) {
			out = append(out, f[4])
		}
	}
	return out
}

// execSleep starts a shell named argv0 with args on its command line and returns its
// stopper.
func execSleep(t *testing.T, argv0 string, args ...string) func() {
	t.Helper()
	// "; :" keeps the shell from replacing itself with sleep.
	p, err := os.StartProcess("/bin/sh", append([]string{argv0, "-c", "sleep 60; :"}, args...), &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	return func() { p.Kill(); p.Wait() }
}

func TestGoroutinesParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"goroutine profile: total 26\n1 @ 0x1\n", 26, true},
		{"goroutine profile: total 3", 3, true},
		{"404 page not found\n", 0, false},
		{"", 0, false},
	} {
		n, err := goroutines(tc.in)
		if (err == nil) != tc.ok || n != tc.want {
			t.Errorf("goroutines(%q) = %d, %v; want %d, ok %v", tc.in, n, err, tc.want, tc.ok)
		}
	}
}
