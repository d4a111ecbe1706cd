package proxmoxvm

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/lxcri/lxcri/backend/proxmoxvm/launchspec"
	"github.com/lxcri/lxcri/proxmox/pvesim"
	"github.com/lxcri/lxcri/proxmox/taskguest"
	"github.com/lxcri/lxcri/runtime"
)

// These tests drive the backend against pvesim, whose VMs run their guests as LXC
// containers standing in for the guest OS: real processes, output, exit codes, a frozen
// guest and a guest kept with a vmstate snapshot.

var launcherPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "proxmoxvm-test-")
	if err != nil {
		panic(err)
	}
	launcherPath = filepath.Join(dir, LauncherBinary)
	cmd := exec.Command("go", "build", "-o", launcherPath, "github.com/lxcri/lxcri/cmd/lxcri-vm-launcher")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("build the launcher: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func defaultSpec(t *testing.T, opts ...oci.SpecOpts) *specs.Spec {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "test")
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "c1"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type testEnv struct {
	sim *pvesim.Server
	b   *backend
}

func newTestEnv(t *testing.T, edit func(*runtime.Config)) (*testEnv, error) {
	t.Helper()
	sim, err := pvesim.New(pvesim.Config{Dir: t.TempDir(), AuthFailDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	c := runtime.DefaultConfig()
	if err := c.MergeFile(filepath.Join(sim.Dir(), "lxcri.toml"), true); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(c)
	}
	b, err := newBackend(context.Background(), c, launcherPath)
	return &testEnv{sim: sim, b: b}, err
}

// busyboxRoot is an image root filesystem: busybox and its applets.
func busyboxRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	os.MkdirAll(filepath.Join(root, "tmp"), 0o1777)
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static: %v", err)
	}
	os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755)
	for _, a := range []string{"sh", "echo", "cat", "sleep", "pwd", "id", "env"} {
		os.Symlink("busybox", filepath.Join(root, "bin", a))
	}
	return root
}

type task struct {
	c              runtime.Container
	req            *runtime.CreateRequest
	stdin          string
	stdout, stderr string
}

func (e *testEnv) create(t *testing.T, id string, spec *specs.Spec, checkpoint string) (*task, error) {
	t.Helper()
	dir := t.TempDir()
	tk := &task{stdin: filepath.Join(dir, "stdin"), stdout: filepath.Join(dir, "out"), stderr: filepath.Join(dir, "err")}
	ctx := context.Background()
	// stdio fifos as containerd makes them; each is held open here (read-write) so the
	// IO's opens do not block, and the output fifos are copied into files as they fill
	for _, f := range []string{tk.stdin, tk.stdout + ".fifo", tk.stderr + ".fifo"} {
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
		h, err := os.OpenFile(f, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		if f != tk.stdin {
			out, _ := os.Create(strings.TrimSuffix(f, ".fifo"))
			t.Cleanup(func() { out.Close() })
			go io.Copy(out, h)
		}
	}
	pio, err := runtime.NewIO(ctx, id, runtime.Stdio{Stdin: tk.stdin, Stdout: tk.stdout + ".fifo", Stderr: tk.stderr + ".fifo"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pio.Close() })
	tk.req = &runtime.CreateRequest{ID: id, Namespace: "test", Bundle: t.TempDir(), Rootfs: busyboxRoot(t),
		Spec: spec, StateDir: t.TempDir(), IO: pio, Checkpoint: checkpoint}
	c, err := e.b.Create(ctx, tk.req)
	tk.c = c
	return tk, err
}

func (e *testEnv) vms(t *testing.T) []int {
	t.Helper()
	ids, err := findVMs(context.Background(), e.b.api, taskguest.OwnerTag)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func wait(t *testing.T, p runtime.Process) runtime.Exit {
	t.Helper()
	select {
	case <-p.Done():
		return p.Exit()
	case <-time.After(2 * time.Minute):
		t.Fatalf("process %s did not end", p.ID())
	}
	return runtime.Exit{}
}

// waitFor polls a file until it holds want.
func waitFor(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) || time.Now().After(deadline) {
			return string(b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The init runs chrooted in the image's root with the spec's env, cwd and user; its
// output arrives while it runs, its stdin is delivered, its exit code reported; the VM is
// listed while the task exists and gone after Delete.
func TestRunOutputExitCode(t *testing.T) {
	ctx := context.Background()
	e, err := newTestEnv(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := defaultSpec(t,
		oci.WithProcessArgs("sh", "-c", `echo first; pwd; id -u; echo "V=$V"; read line; echo "got $line"; echo oops >&2; exit 3`),
		oci.WithEnv([]string{"V=from-spec"}), oci.WithProcessCwd("/tmp"), oci.WithUIDGID(1000, 1000))
	tk, err := e.create(t, "c1", spec, "")
	if err != nil {
		t.Fatal(err)
	}
	if ids := e.vms(t); len(ids) != 1 {
		t.Fatalf("VMs %v for one task", ids)
	}
	if err := tk.c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if tk.c.Init().Pid() == 0 {
		t.Error("no pid")
	}
	// output before the process ends: it waits for its stdin
	if out := waitFor(t, tk.stdout, "first\n/tmp\n1000\nV=from-spec\n"); out != "first\n/tmp\n1000\nV=from-spec\n" {
		t.Errorf("output while running: %q", out)
	}
	w, _ := os.OpenFile(tk.stdin, os.O_WRONLY, 0)
	w.WriteString("hello\n")
	w.Close()
	if ex := wait(t, tk.c.Init()); ex.Status != 3 {
		t.Errorf("exit %d, want 3", ex.Status)
	}
	if b := waitFor(t, tk.stdout, "got hello\n"); !strings.HasSuffix(b, "got hello\n") {
		t.Errorf("stdout %q", b)
	}
	if b := waitFor(t, tk.stderr, "oops\n"); b != "oops\n" {
		t.Errorf("stderr %q", b)
	}
	if err := tk.c.Delete(ctx, false); err != nil {
		t.Fatal(err)
	}
	if ids := e.vms(t); len(ids) != 0 {
		t.Fatalf("VMs %v after delete", ids)
	}
}

// counterInit keeps a counter only in its memory and prints it on SIGUSR1.
const counterInit = `n=0; trap 'echo "n=$n"' USR1; while :; do n=$((n+1)); sleep 0.05; done`

// lastCount is the last n=K line of an output file.
func lastCount(t *testing.T, path string) int {
	t.Helper()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var n int
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "n="); ok {
			n = 0
			for _, c := range v {
				n = n*10 + int(c-'0')
			}
		}
	}
	return n
}

// Exec, kill, pause/resume and stats on a running task, then a checkpoint with the VM's
// RAM and a restore whose init goes on with the memory it had.
func TestExecPauseCheckpointRestore(t *testing.T) {
	ctx := context.Background()
	e, err := newTestEnv(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := e.create(t, "c1", defaultSpec(t, oci.WithProcessArgs("sh", "-c", counterInit)), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.c.Start(ctx); err != nil {
		t.Fatal(err)
	}

	// exec: output and exit code
	dir := t.TempDir()
	eio, err := runtime.NewIO(ctx, "e1", runtime.Stdio{Stdout: "file://" + dir + "/out", Stderr: "file://" + dir + "/err"})
	if err != nil {
		t.Fatal(err)
	}
	defer eio.Close()
	ep, err := tk.c.Exec(ctx, &runtime.ExecRequest{ID: "e1", IO: eio, Spec: &specs.Process{Args: []string{"sh", "-c", "echo exec-out; exit 5"}, Env: []string{"PATH=/bin"}, Cwd: "/"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if ex := wait(t, ep); ex.Status != 5 {
		t.Errorf("exec exit %d", ex.Status)
	}
	eio.Wait()
	if b, _ := os.ReadFile(dir + "/out"); string(b) != "exec-out\n" {
		t.Errorf("exec output %q", b)
	}
	// an exec of a missing program fails at start, naming it
	eio2, _ := runtime.NewIO(ctx, "e2", runtime.Stdio{})
	defer eio2.Close()
	ep2, _ := tk.c.Exec(ctx, &runtime.ExecRequest{ID: "e2", IO: eio2, Spec: &specs.Process{Args: []string{"no-such-program"}, Cwd: "/"}})
	if err := ep2.Start(ctx); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "no-such-program") {
		t.Errorf("exec of a missing program: %v", err)
	}

	// a signal reaches the init in the guest; its in-memory counter grows
	if err := tk.c.Init().Kill(ctx, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tk.stdout, "n=")
	n1 := lastCount(t, tk.stdout)

	// pause freezes the guest: the counter stands still
	if err := tk.c.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := e.b.api.VMStatus(ctx, tk.c.(*container).vmid)
	if err != nil || !st.Paused() {
		t.Fatalf("paused VM: %+v %v", st, err)
	}
	if err := tk.c.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	any, err := tk.c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := typeurl.UnmarshalAny(any)
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := v.(*v1stats.Metrics); !ok || m.Memory.Usage.Limit != 512<<20 || m.Memory.Usage.Usage == 0 {
		t.Errorf("stats: %+v", v)
	}

	time.Sleep(500 * time.Millisecond)
	if err := tk.c.Init().Kill(ctx, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200 && lastCount(t, tk.stdout) <= n1; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	n2 := lastCount(t, tk.stdout)
	if n2 <= n1 {
		t.Fatalf("counter %d after %d", n2, n1)
	}

	// checkpoint with RAM; the task exits
	ck := t.TempDir()
	if err := tk.c.Checkpoint(ctx, &runtime.CheckpointRequest{Path: ck, Exit: true}); err != nil {
		t.Fatal(err)
	}
	if ex := wait(t, tk.c.Init()); ex.Status != 137 {
		t.Errorf("init after checkpoint --exit: %d", ex.Status)
	}
	if err := tk.c.Delete(ctx, false); err != nil {
		t.Fatal(err)
	}

	// the restored task's init goes on counting from where it was
	rt, err := e.create(t, "c1", defaultSpec(t, oci.WithProcessArgs("sh", "-c", counterInit)), ck)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rt.c.Init().Kill(ctx, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, rt.stdout, "n=")
	if n3 := lastCount(t, rt.stdout); n3 < n2 {
		t.Errorf("restored counter %d, below %d before the checkpoint: the memory was lost", n3, n2)
	}
	if b, _ := os.ReadFile(rt.stdout); strings.Count(string(b), "n=") != 1 {
		t.Errorf("the restored task's output repeats what was delivered before: %q", b)
	}
	// SIGKILL to the init stops the VM
	if err := rt.c.Init().Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if ex := wait(t, rt.c.Init()); ex.Status != 137 {
		t.Errorf("init after SIGKILL: %d", ex.Status)
	}
	if err := rt.c.Delete(ctx, false); err != nil {
		t.Fatal(err)
	}
}

// A guest whose agent never answers: Create fails within agent_timeout saying so, and the
// VM it cloned is gone.
func TestAgentNeverAnswers(t *testing.T) {
	e, err := newTestEnv(t, func(c *runtime.Config) { c.ProxmoxVM.AgentTimeout = "700ms" })
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.AddFault(pvesim.Fault{Path: `/agent/ping$`, Kind: pvesim.FaultError, Status: 500, Message: "QEMU guest agent is not running"}); err != nil {
		t.Fatal(err)
	}
	tk, err := e.create(t, "c1", defaultSpec(t, oci.WithProcessArgs("/bin/true")), "")
	if err == nil || !strings.Contains(err.Error(), "no answer within 700ms") || !strings.Contains(err.Error(), "QEMU guest agent is not running") || !strings.Contains(err.Error(), "removed again") {
		t.Fatalf("create with a silent agent: %v", err)
	}
	if ids := e.vms(t); len(ids) != 0 {
		t.Errorf("VMs %v left by a failed create", ids)
	}
	if _, err := kind.ReadRecord(tk.req.Bundle); !os.IsNotExist(err) {
		t.Errorf("record after a failed create: %v", err)
	}
}

// A VM removed behind the task's back ends its processes, as a killed VM would.
func TestVMRemoved(t *testing.T) {
	ctx := context.Background()
	e, err := newTestEnv(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := e.create(t, "c1", defaultSpec(t, oci.WithProcessArgs("sleep", "1000")), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	vmid := tk.c.(*container).vmid
	if err := e.b.api.StopVM(ctx, vmid); err != nil {
		t.Fatal(err)
	}
	if err := e.b.api.DeleteVM(ctx, vmid); err != nil {
		t.Fatal(err)
	}
	if ex := wait(t, tk.c.Init()); ex.Status != 137 {
		t.Errorf("init of a removed VM: %d", ex.Status)
	}
	if err := tk.c.Delete(ctx, false); err != nil {
		t.Errorf("delete of a task whose VM is gone: %v", err)
	}
}

// The launcher gives the process the spec's capabilities, no_new_privs and rlimits, not
// the guest root's: containerd's default spec leaves a process running as root with its
// default capability set only. Read from the guest's /proc, since the image's root has
// none mounted.
func TestProcessPrivileges(t *testing.T) {
	ctx := context.Background()
	e, err := newTestEnv(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := defaultSpec(t, oci.WithProcessArgs("sleep", "600"))
	spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 4321, Soft: 321}}
	defMask, err := launchspec.Mask(spec.Process.Capabilities.Bounding)
	if err != nil || defMask == 0 || !spec.Process.NoNewPrivileges {
		t.Fatalf("containerd's default spec: capabilities %v (%v), noNewPrivileges %v", spec.Process.Capabilities, err, spec.Process.NoNewPrivileges)
	}
	tk, err := e.create(t, "c1", spec, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tk.c.Delete(ctx, true) })
	if err := tk.c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// an exec as another user keeps only what its ambient set carries over
	exec := *spec.Process
	exec.NoNewPrivileges = false
	exec.User = specs.User{UID: 1000, GID: 1000}
	kill := []string{"CAP_KILL"}
	exec.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL", "CAP_CHOWN"},
		Effective: kill, Permitted: kill, Inheritable: kill, Ambient: kill}
	exec.Rlimits = nil
	p, err := tk.c.Exec(ctx, &runtime.ExecRequest{ID: "e1", Spec: &exec, IO: tk.req.IO})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	g := tk.c.(*container).init.gst()
	status := func(pid int) map[string]string {
		st, err := g.check(ctx, nil, "cat", fmt.Sprintf("/proc/%d/status", pid), fmt.Sprintf("/proc/%d/limits", pid))
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, l := range strings.Split(string(st.Out), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				m[k] = strings.TrimSpace(v)
			} else if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(l, "Max open files") {
				m["nofile"] = f[3] + " " + f[4]
			}
		}
		return m
	}
	want := fmt.Sprintf("%016x", defMask)
	init := status(tk.c.Init().Pid())
	for k, v := range map[string]string{"CapEff": want, "CapPrm": want, "CapBnd": want, "CapInh": "0000000000000000",
		"CapAmb": "0000000000000000", "NoNewPrivs": "1", "nofile": "321 4321", "Uid": "0\t0\t0\t0"} {
		if init[k] != v {
			t.Errorf("init %s = %q, want %q", k, init[k], v)
		}
	}
	ex := status(p.Pid())
	killMask := fmt.Sprintf("%016x", 1<<unix.CAP_KILL)
	for k, v := range map[string]string{"CapEff": killMask, "CapPrm": killMask, "CapAmb": killMask,
		"CapBnd": fmt.Sprintf("%016x", 1<<unix.CAP_KILL|1<<unix.CAP_CHOWN), "NoNewPrivs": "0", "Uid": "1000\t1000\t1000\t1000"} {
		if ex[k] != v {
			t.Errorf("exec %s = %q, want %q", k, ex[k], v)
		}
	}
}
