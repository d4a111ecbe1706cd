//go:build linux

package shim_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lxcri/lxcri/backend/proxmoxvm"
	"github.com/lxcri/lxcri/integration/harness"
	"github.com/lxcri/lxcri/proxmox"
	"github.com/lxcri/lxcri/proxmox/pvesim"
	"github.com/lxcri/lxcri/runtime"
)

// startPVEVM starts an emulated PVE node and containerd whose lxcri shims run tasks on
// proxmox-vm against it, with the lxcri.toml the emulator wrote. It returns an API client
// for checks.
func startPVEVM(t *testing.T) (*harness.Env, *proxmox.Client) {
	t.Helper()
	env, api, _ := startPVEVMSim(t)
	return env, api
}

// startPVEVMSim is startPVEVM that also returns the emulator, to break it.
func startPVEVMSim(t *testing.T) (*harness.Env, *proxmox.Client, *pvesim.Server) {
	t.Helper()
	sim, err := pvesim.New(pvesim.Config{Dir: t.TempDir(), AuthFailDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	toml, err := os.ReadFile(filepath.Join(sim.Dir(), "lxcri.toml"))
	if err != nil {
		t.Fatal(err)
	}
	env := start(t, backendCase{name: "proxmox-vm", config: "backend = \"proxmox-vm\"\n" + string(toml)})
	cfg := runtime.DefaultConfig()
	if err := cfg.MergeFile(filepath.Join(sim.Dir(), "lxcri.toml"), true); err != nil {
		t.Fatal(err)
	}
	api, err := proxmox.New(context.Background(), &cfg.Proxmox)
	if err != nil {
		t.Fatal(err)
	}
	return env, api, sim
}

// vmsOf lists the VMs that are not the template.
func vmsOf(t *testing.T, api *proxmox.Client) []int {
	t.Helper()
	vms, err := api.VMs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, v := range vms {
		if !bool(v.Template) {
			ids = append(ids, int(v.VMID))
		}
	}
	return ids
}

// ctr run on proxmox-vm: output and exit code, exec, pause/resume, metrics, kill, and a
// checkpoint whose restore keeps the init's in-memory state; the VM is listed while the
// task exists and gone after.
func TestProxmoxVM(t *testing.T) {
	env, api := startPVEVM(t)

	t0 := time.Now()
	if out := ctrOK(t, env, "run", "--rm", "--runtime", rt, env.Image, "vm-echo0", "echo", "hello"); out != "hello\n" {
		t.Errorf("ctr run echo: %q", out)
	}
	t.Logf("ctr run --rm echo on proxmox-vm: %v", time.Since(t0))
	t0 = time.Now()
	out, errOut, code := env.Ctr("run", "--rm", "--runtime", rt, env.Image, "vm-echo", "sh", "-c", "echo hello from the VM; echo oops >&2; exit 3")
	if code != 3 || out != "hello from the VM\n" || !strings.Contains(errOut, "oops") {
		t.Fatalf("ctr run: exit %d stdout %q stderr %q", code, out, errOut)
	}
	t.Logf("ctr run --rm (clone, start, agent, copy, run, delete): %v", time.Since(t0))
	if ids := vmsOf(t, api); len(ids) != 0 {
		t.Errorf("VMs %v after ctr run --rm", ids)
	}

	// a task that keeps a counter in memory and prints it on SIGUSR1
	log := filepath.Join(t.TempDir(), "vm.log")
	ctrOK(t, env, "run", "-d", "--log-uri", "file://"+log, "--runtime", rt, env.Image, "vm-c", "sh", "-c", counterInitIT)
	waitRunning(t, env, "vm-c")
	if ids := vmsOf(t, api); len(ids) != 1 {
		t.Fatalf("VMs %v while one task runs", ids)
	}
	t0 = time.Now()
	if out := ctrOK(t, env, "task", "exec", "--exec-id", "e1", "vm-c", "sh", "-c", "echo exec in $(pwd) as $(id -u)"); out != "exec in / as 0\n" {
		t.Errorf("exec: %q", out)
	}
	t.Logf("ctr task exec: %v", time.Since(t0))
	ctrOK(t, env, "task", "pause", "vm-c")
	waitStatus(t, env, "vm-c", "PAUSED")
	ctrOK(t, env, "task", "resume", "vm-c")
	waitStatus(t, env, "vm-c", "RUNNING")
	if out := ctrOK(t, env, "task", "metrics", "vm-c"); !strings.Contains(out, "memory") {
		t.Errorf("metrics: %q", out)
	}
	time.Sleep(time.Second)
	ctrOK(t, env, "task", "kill", "-s", "SIGUSR1", "vm-c")
	before := waitCount(t, log, 0)

	t0 = time.Now()
	ref := checkpointContainer(t, env, "vm-c", "example.com/vm-c:ck1")
	t.Logf("checkpoint (snapshot with vmstate): %v", time.Since(t0))
	// the emulator's stand-in guest stops with a vmstate snapshot: the task ends
	waitStatus(t, env, "vm-c", "STOPPED")
	ctrOK(t, env, "task", "rm", "vm-c")
	ctrOK(t, env, "container", "rm", "vm-c")

	t0 = time.Now()
	restoreRun(t, env, ref, "vm-r")
	t.Logf("restore (rollback with vmstate): %v", time.Since(t0))
	// the restored init writes the counter it has in memory where an exec reads it
	ctrOK(t, env, "task", "kill", "-s", "SIGUSR1", "vm-r")
	after := -1
	for i := 0; i < 200; i++ {
		out, _, _ := env.Ctr("task", "exec", "--exec-id", "r"+strconv.Itoa(i), "vm-r", "cat", "/tmp/n")
		if n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(out), "n=")); err == nil && n > before {
			after = n
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if after <= before {
		t.Errorf("the restored init's counter is not above %d, its value before the checkpoint: the memory was lost", before)
	}
	ctrOK(t, env, "task", "kill", "-s", "SIGKILL", "vm-r")
	waitStatus(t, env, "vm-r", "STOPPED")
	ctrOK(t, env, "task", "rm", "vm-r")
	ctrOK(t, env, "container", "rm", "vm-r")

	// the same ctr run on the lxc backend, for comparison in the same run
	lenv := start(t, backendCase{name: "lxc", config: "backend = \"lxc\"\n"})
	t0 = time.Now()
	if out := ctrOK(t, lenv, "run", "--rm", "--runtime", rt, lenv.Image, "lxc-echo", "echo", "hello"); out != "hello\n" {
		t.Errorf("ctr run echo on lxc: %q", out)
	}
	t.Logf("ctr run --rm echo on lxc: %v", time.Since(t0))
	ctrOK(t, lenv, "run", "-d", "--runtime", rt, lenv.Image, "lxc-c", "sleep", "1000")
	waitRunning(t, lenv, "lxc-c")
	t0 = time.Now()
	ctrOK(t, lenv, "task", "exec", "--exec-id", "e1", "lxc-c", "true")
	t.Logf("ctr task exec on lxc: %v", time.Since(t0))
	ctrOK(t, lenv, "task", "kill", "-s", "SIGKILL", "lxc-c")
	waitStatus(t, lenv, "lxc-c", "STOPPED")
	ctrOK(t, lenv, "task", "rm", "lxc-c")
	ctrOK(t, lenv, "container", "rm", "lxc-c")
}

const counterInitIT = `n=0; trap 'echo "n=$n"; echo "n=$n" > /tmp/n' USR1; while :; do n=$((n+1)); sleep 0.05; done`

// waitCount waits for an "n=K" line with K above after in the log and returns K.
func waitCount(t *testing.T, log string, after int) int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(log)
		best := -1
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "n="); ok {
				if n, err := strconv.Atoi(v); err == nil && n > best {
					best = n
				}
			}
		}
		if best > after {
			return best
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(log)
	t.Fatalf("no count above %d in the task's log: %q", after, b)
	return 0
}

// lxcri prune destroys a VM kept for a checkpoint once no checkpoint image names it (and
// its snapshot is older than --min-age), and never a task's VM.
func TestProxmoxVMPrune(t *testing.T) {
	env, api, sim := startPVEVMSim(t)
	bin := filepath.Join(harness.ShimDir(), "lxcri")
	prune := func(args ...string) proxmoxvm.PruneResult {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"prune", "--json", "--address", env.Socket}, args...)...)
		cmd.Env = append(os.Environ(), "LXCRI_CONFIG="+filepath.Join(sim.Dir(), "lxcri.toml"))
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("lxcri prune %v: %v: %s", args, err, stderr)
		}
		var r struct {
			VMs *proxmoxvm.PruneResult `json:"vms"`
		}
		if err := json.Unmarshal(out, &r); err != nil || r.VMs == nil {
			t.Fatalf("lxcri prune %v: %q: %v", args, out, err)
		}
		t.Logf("lxcri prune %v: %+v", args, *r.VMs)
		return *r.VMs
	}

	runDetached(t, env, "vm-live", nil, "sleep", "1000")
	live := vmsOf(t, api)
	runDetached(t, env, "vm-p", nil, "sleep", "1000")
	ref := checkpointContainer(t, env, "vm-p", "example.com/vm-p:ck")
	waitStatus(t, env, "vm-p", "STOPPED")
	ctrOK(t, env, "task", "rm", "vm-p")
	ctrOK(t, env, "container", "rm", "vm-p")
	var kept int
	for _, id := range vmsOf(t, api) {
		if !slices.Contains(live, id) {
			kept = id
		}
	}
	if kept == 0 {
		t.Fatalf("no VM kept for the checkpoint: %v", vmsOf(t, api))
	}
	keptS := strconv.Itoa(kept)

	if r := prune("--min-age", "0"); !slices.Contains(r.Live, keptS) || len(r.Freed) != 0 {
		t.Errorf("prune while the checkpoint image exists: %+v, want VM %d live", r, kept)
	}
	ctrOK(t, env, "images", "rm", ref)
	if r := prune(); !slices.Contains(r.Young, keptS) || len(r.Freed) != 0 {
		t.Errorf("prune of a fresh checkpoint's VM: %+v, want VM %d young", r, kept)
	}
	if r := prune("--min-age", "0", "--dry-run"); !slices.Equal(r.Freed, []string{keptS}) {
		t.Errorf("prune --dry-run: %+v, want VM %d to be freed", r, kept)
	}
	if !vmListed(t, api, kept) {
		t.Errorf("VM %d destroyed by a dry run", kept)
	}
	if r := prune("--min-age", "0"); !slices.Equal(r.Freed, []string{keptS}) {
		t.Errorf("prune: %+v, want VM %d freed", r, kept)
	}
	if vmListed(t, api, kept) {
		t.Errorf("VM %d still listed after prune", kept)
	}
	if ids := vmsOf(t, api); !slices.Equal(ids, live) {
		t.Errorf("VMs %v after prune, want the running task's %v", ids, live)
	}
	removeTask(t, env, "vm-live")
	if ids := vmsOf(t, api); len(ids) != 0 {
		t.Errorf("VMs %v at the end", ids)
	}
}
