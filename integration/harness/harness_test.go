//go:build linux

package harness_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lxcri/lxcri/integration/harness"
)

// The harness runs containerd's own runc shim here, so that it is tested without lxcri.
func TestHarnessRunc(t *testing.T) {
	env := harness.Start(t, harness.WithoutShim())

	if !filepath.IsAbs(env.Socket) || len(env.Socket) > 100 {
		t.Errorf("socket path %q: want absolute and short", env.Socket)
	}
	if _, err := os.Stat(env.LogPath); err != nil {
		t.Errorf("log: %v", err)
	}
	cfg, err := os.ReadFile(env.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"restrict_oom_score_adj = true", env.Root + "/root", env.Root + "/state", env.Socket} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("config lacks %q", want)
		}
	}

	out, _, code := env.Ctr("images", "ls", "-q")
	if code != 0 || !strings.Contains(out, env.Image) {
		t.Fatalf("image %s not imported: %q (exit %d)", env.Image, out, code)
	}

	t.Run("run echo", func(t *testing.T) {
		out, errOut, code := env.Ctr("run", "--rm", "--runtime", harness.RuncRuntimeType, env.Image, "t1", "echo", "hello")
		if code != 0 {
			t.Fatalf("ctr run: exit %d: %s", code, errOut)
		}
		if got := strings.TrimSpace(out); got != "hello" {
			t.Fatalf("output %q, want hello", got)
		}
	})

	t.Run("stdin", func(t *testing.T) {
		// ctr does not pass stdin's EOF on (a plain `cat` never ends): read one line
		out, errOut, code := env.CtrStdin(strings.NewReader("from-stdin\n"),
			"run", "--rm", "--runtime", harness.RuncRuntimeType, env.Image, "t2", "sh", "-c", "read l; echo got-$l")
		if code != 0 || strings.TrimSpace(out) != "got-from-stdin" {
			t.Fatalf("ctr run cat: exit %d, out %q, err %q", code, out, errOut)
		}
	})

	t.Run("nerdctl", func(t *testing.T) {
		out, errOut, code := env.Nerdctl("run", "--rm", "--net", "none", "--runtime", harness.RuncRuntimeType, env.Image, "echo", "hi-nerdctl")
		if code != 0 || strings.TrimSpace(out) != "hi-nerdctl" {
			t.Fatalf("nerdctl run: exit %d, out %q, err %q", code, out, errOut)
		}
	})

	t.Run("crictl", func(t *testing.T) {
		out, errOut, code := env.Crictl("version")
		if code != 0 || !strings.Contains(out, "containerd") {
			t.Fatalf("crictl version: exit %d, out %q, err %q", code, out, errOut)
		}
	})

	t.Run("client", func(t *testing.T) {
		c := env.Client()
		img, err := c.GetImage(env.Context(), env.Image)
		if err != nil {
			t.Fatal(err)
		}
		if img.Name() != env.Image {
			t.Fatalf("image %q", img.Name())
		}
	})

	t.Run("restart with running task", func(t *testing.T) {
		if _, errOut, code := env.Ctr("run", "-d", "--runtime", harness.RuncRuntimeType, env.Image, "t3", "sleep", "600"); code != 0 {
			t.Fatalf("ctr run -d: exit %d: %s", code, errOut)
		}
		shims := env.ShimProcesses()
		if len(shims) == 0 {
			t.Fatalf("no shim process found for %s", env.Socket)
		}
		before := env.DaemonPID()
		env.Restart()
		if after := env.DaemonPID(); after == 0 || after == before {
			t.Fatalf("daemon pid %d -> %d", before, after)
		}
		out, errOut, code := env.Ctr("task", "ls")
		if code != 0 || !strings.Contains(out, "t3") || !strings.Contains(out, "RUNNING") {
			t.Fatalf("task ls after restart: exit %d out %q err %q", code, out, errOut)
		}
		out, errOut, code = env.Ctr("task", "exec", "--exec-id", "e1", "t3", "echo", "still-here")
		if code != 0 || strings.TrimSpace(out) != "still-here" {
			t.Fatalf("exec after restart: exit %d out %q err %q", code, out, errOut)
		}
		// the Go client survives the restart
		if _, err := env.Client().LoadContainer(env.Context(), "t3"); err != nil {
			t.Fatalf("client after restart: %v", err)
		}
		// leave t3 running: the cleanup must kill and delete it
	})

	t.Run("other namespace", func(t *testing.T) {
		other := env.In("lxcri-other")
		if out, _, code := other.Ctr("containers", "ls", "-q"); code != 0 || strings.TrimSpace(out) != "" {
			t.Fatalf("containers in other namespace: %q (exit %d)", out, code)
		}
	})
}

func TestHarnessCleanup(t *testing.T) {
	var root, sock string
	var shims []int
	t.Run("inner", func(t *testing.T) {
		env := harness.Start(t, harness.WithoutShim())
		root, sock = env.Root, env.Socket
		if _, errOut, code := env.Ctr("run", "-d", "--runtime", harness.RuncRuntimeType, env.Image, "leftover", "sleep", "600"); code != 0 {
			t.Fatalf("ctr run -d: exit %d: %s", code, errOut)
		}
		shims = env.ShimProcesses()
		if len(shims) == 0 {
			t.Fatal("no shim")
		}
		if len(harness.MountsUnder(root)) == 0 {
			t.Fatal("expected the container rootfs mounted under the root")
		}
	})
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("root %s still there: %v", root, err)
	}
	if m := harness.MountsUnder(root); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	// shims exit asynchronously after their last task is deleted
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range shims {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("shim %d of %s still running", pid, sock)
		}
	}
}

func TestLeakHelpers(t *testing.T) {
	if m := harness.MountsUnder("/proc"); len(m) == 0 || m[len(m)-1] != "/proc" {
		t.Errorf("MountsUnder(/proc) = %v", m)
	}
	if cg := harness.CgroupsNamed("lxcri-no-such-cgroup-name"); len(cg) != 0 {
		t.Errorf("CgroupsNamed: %v", cg)
	}
	// create a cgroup in one hierarchy and find it
	var base string
	for _, b := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if fi, err := os.Stat(filepath.Join(b, "cgroup.procs")); err == nil && !fi.IsDir() {
			base = b
			break
		}
	}
	if base == "" {
		t.Fatal("no writable cgroup hierarchy found")
	}
	name := filepath.Join(base, "lxcri-harness-probe")
	if err := os.Mkdir(name, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(name)
	found := harness.CgroupsNamed("lxcri-harness-probe")
	if len(found) != 1 || found[0] != name {
		t.Errorf("CgroupsNamed = %v, want [%s]", found, name)
	}
	_ = harness.ShimProcesses()
}

// The handlers of contrib/containerd/*.toml, one per backend, must load into containerd 2.x
// together, each with its runtime type and options.
func TestContribContainerdSnippet(t *testing.T) {
	var all []string
	for _, name := range []string{"lxcri", "lxcri-crun", "lxcri-proxmox-lxc", "lxcri-proxmox-vm"} {
		b, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "contrib", "containerd", name+".toml"))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, string(b))
	}
	env := harness.Start(t, harness.WithoutShim(), harness.WithoutImage(), harness.WithConfig(strings.Join(all, "\n")))
	out, errOut, code := env.Crictl("info")
	if code != 0 {
		t.Fatalf("crictl info: exit %d: %s", code, errOut)
	}
	for _, want := range []string{`"lxcri"`, `"lxcri-crun"`, `"lxcri-proxmox-lxc"`, `"lxcri-proxmox-vm"`, `"io.containerd.lxcri.v2"`,
		`/etc/lxcri/config.toml`, `/usr/bin/runc`, `"proxmox-lxc"`, `"proxmox-vm"`} {
		if !strings.Contains(out, want) {
			t.Errorf("crictl info lacks %s", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

// TestProcs: a process this test starts is listed with its command line and cgroup.
func TestProcs(t *testing.T) {
	cmd := exec.Command("sleep", "--", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	var found *harness.Proc
	for _, p := range harness.Procs() {
		if p.Pid == os.Getpid() {
			t.Errorf("Procs lists this process (%d)", p.Pid)
		}
		if p.Pid == cmd.Process.Pid {
			found = &p
		}
	}
	if found == nil {
		t.Fatalf("Procs has no pid %d", cmd.Process.Pid)
	}
	own, _ := os.ReadFile("/proc/self/cgroup")
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"Name", found.Name(), "sleep"},
		{"Cmdline", found.Cmdline(), "sleep -- 300"},
		{"HasArg(300)", found.HasArg("300"), true},
		{"HasArg(30)", found.HasArg("30"), false},
		{"Cgroup", found.Cgroup(), string(own)}, // a child starts in its parent's cgroups
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}
