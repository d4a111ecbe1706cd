//go:build linux

package shim_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lxcri/lxcri/integration/harness"
	"github.com/lxcri/lxcri/proxmox"
	"github.com/lxcri/lxcri/proxmox/pvesim"
	"github.com/lxcri/lxcri/runtime"
)

// pveEnv is containerd whose lxcri shims run tasks as CTs of an emulated PVE node: pvesim
// in this test process, over HTTPS, with real LXC containers behind its CTs.
type pveEnv struct {
	*harness.Env
	sim *pvesim.Server
	api *proxmox.Client
	// config is the shim's configuration (the emulator's [proxmox] section)
	config string
}

func startPVE(t *testing.T, opts ...harness.Option) *pveEnv {
	t.Helper()
	// An unprivileged CT's root (uid 100000) must reach its rootfs in the emulator's
	// directory: t.TempDir makes it and its parent 0700.
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// No 3 s delay before a 401: the fault cases provoke some.
	sim, err := pvesim.New(pvesim.Config{Dir: dir, AuthFailDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	section, err := os.ReadFile(filepath.Join(sim.Dir(), "lxcri.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// The emulator's section names itself; its CTs live in its own LXC path.
	cfgText := "backend = \"proxmox-lxc\"\n" + string(section)
	if !strings.Contains(string(section), "lxc_path") {
		cfgText += fmt.Sprintf("lxc_path = %q\n", sim.LXCPath())
	}
	cfg := runtime.DefaultConfig()
	if err := cfg.Merge("test", []byte(cfgText)); err != nil {
		t.Fatal(err)
	}
	api, err := proxmox.New(context.Background(), &cfg.Proxmox)
	if err != nil {
		t.Fatal(err)
	}
	env := start(t, backendCase{name: "proxmox-lxc", config: cfgText}, opts...)
	return &pveEnv{Env: env, sim: sim, api: api, config: cfgText}
}

// cts lists the VMIDs of the node's CTs that lxcri made.
func (e *pveEnv) cts(t *testing.T) []int {
	t.Helper()
	list, err := e.api.CTs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, ct := range list {
		if slices.Contains(ct.TagList(), "lxcri") {
			ids = append(ids, int(ct.VMID))
		}
	}
	return ids
}

func (e *pveEnv) assertNoCT(t *testing.T) {
	t.Helper()
	if ids := e.cts(t); len(ids) > 0 {
		t.Errorf("CTs %v are still on the node", ids)
	}
}

// TestProxmoxLXC runs tasks on the proxmox-lxc backend: each is a PVE CT, listed by the
// API while it runs and gone after; its processes' stdio, exit codes, signals, pids and
// stats go through the node's LXC.
func TestProxmoxLXC(t *testing.T) {
	env := startPVE(t)

	t.Run("run", func(t *testing.T) {
		checkRunExitCodes(t, env.Env, "pve-")
		env.assertNoCT(t)
	})

	// Templates are found again by the image layers a task's root stacks: images that
	// share their base layer, or hold the same file with other content, each run on a
	// root of their own, also when a template of another image was made just before.
	t.Run("templates", func(t *testing.T) {
		images := []struct{ ref, marker string }{
			{env.Image, ""},
			{"docker.io/library/pve-marker:one", "one"},
			{"docker.io/library/pve-marker:two", "two"},
		}
		for _, im := range images[1:] {
			ctrOK(t, env.Env, "images", "import", harness.ImageWithLayer(t, t.TempDir(), im.ref,
				harness.LayerEntry{Name: "marker", Body: []byte(im.marker + "\n")}))
		}
		for round := 0; round < 2; round++ {
			for i, im := range images {
				out, errOut, code := env.Ctr("run", "--rm", "--runtime", rt, im.ref, fmt.Sprintf("pve-tpl%d", i), "sh", "-c", "cat /marker 2>/dev/null || echo none")
				want := im.marker
				if want == "" {
					want = "none"
				}
				if code != 0 || out != want+"\n" {
					t.Errorf("round %d, %s: exit %d stdout %q, want %q (stderr %s)", round, im.ref, code, out, want, errOut)
				}
			}
		}
		env.assertNoCT(t)
	})

	t.Run("lifecycle", func(t *testing.T) {
		runDetached(t, env.Env, "pve-life", nil, "sleep", "1000")
		ids := env.cts(t)
		if len(ids) != 1 {
			t.Fatalf("CTs %v while one task runs", ids)
		}
		st, err := env.api.CTStatus(context.Background(), ids[0])
		if err != nil || !st.Running() {
			t.Fatalf("CT %d: %+v %v", ids[0], st, err)
		}

		out, errOut, code := env.Ctr("task", "exec", "--exec-id", "e1", "pve-life", "sh", "-c", "echo out; echo err >&2; exit 5")
		if code != 5 || out != "out\n" || !strings.Contains(errOut, "err") {
			t.Errorf("exec: exit %d stdout %q stderr %q", code, out, errOut)
		}
		out, code = ctrWithTTY(t, env.Env, "", "task", "exec", "-t", "--exec-id", "e2", "pve-life", "sh", "-c", "tty")
		if code != 0 || !strings.Contains(out, "/dev/") {
			t.Errorf("exec -t: exit %d, output %q", code, out)
		}
		out, _, code = env.CtrStdin(strings.NewReader("line1\nline2\n"), "task", "exec", "--exec-id", "e3", "pve-life", "wc", "-l")
		if code != 0 || strings.TrimSpace(out) != "2" {
			t.Errorf("exec with stdin: exit %d stdout %q", code, out)
		}

		ps := ctrOK(t, env.Env, "task", "ps", "pve-life")
		pid := taskPid(t, env.Env, "pve-life")
		if !strings.Contains(ps, fmt.Sprint(pid)) {
			t.Errorf("task ps %q lacks the init's pid %d", ps, pid)
		}
		if m := ctrOK(t, env.Env, "task", "metrics", "pve-life"); !strings.Contains(m, "memory") {
			t.Errorf("metrics: %q", m)
		}

		ctrOK(t, env.Env, "task", "kill", "-s", "SIGKILL", "pve-life")
		waitStatus(t, env.Env, "pve-life", "STOPPED")
		removeTask(t, env.Env, "pve-life")
		env.assertNoCT(t)
	})

	t.Run("checkpoint", func(t *testing.T) {
		ctx := context.Background()
		runDetached(t, env.Env, "pve-ck", nil, "sh", "-c", "echo saved > /state; sleep 1000")
		if out := ctrOK(t, env.Env, "task", "exec", "--exec-id", "w", "pve-ck", "sh", "-c", "while [ ! -s /state ]; do sleep 0.1; done; cat /state"); out != "saved\n" {
			t.Fatalf("state before the checkpoint: %q", out)
		}
		ids := env.cts(t)
		if len(ids) != 1 {
			t.Fatalf("CTs %v", ids)
		}
		ref := checkpoint(t, env.Env, "pve-ck")
		snaps, err := env.api.Snapshots(ctx, ids[0])
		if err != nil || len(snaps) != 1 {
			t.Fatalf("snapshots of CT %d after the checkpoint: %+v %v", ids[0], snaps, err)
		}
		restoreTask(t, env.Env, ref, "pve-rs")
		if out := ctrOK(t, env.Env, "task", "exec", "--exec-id", "r", "pve-rs", "cat", "/state"); out != "saved\n" {
			t.Errorf("restored state: %q", out)
		}
		if n := len(env.cts(t)); n != 2 {
			t.Errorf("%d CTs with the restored task, want 2", n)
		}
		ctrOK(t, env.Env, "task", "kill", "-s", "SIGKILL", "pve-rs")
		ctrOK(t, env.Env, "task", "kill", "-s", "SIGKILL", "pve-ck")
		waitStatus(t, env.Env, "pve-rs", "STOPPED")
		waitStatus(t, env.Env, "pve-ck", "STOPPED")
		removeTask(t, env.Env, "pve-rs")
		removeTask(t, env.Env, "pve-ck")
		env.assertNoCT(t)
	})

	t.Run("faults", func(t *testing.T) { testProxmoxFaults(t, env) })

	// The cost of a CT per task, side by side with the lxc backend in the same containerd:
	// logged, not asserted.
	t.Run("timing", func(t *testing.T) {
		lxcCfg := filepath.Join(t.TempDir(), "lxc.toml")
		if err := os.WriteFile(lxcCfg, []byte("backend = \"lxc\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, b := range []struct {
			name  string
			extra []string
		}{{"proxmox-lxc", nil}, {"lxc", []string{"--runtime-config-path", lxcCfg}}} {
			const n = 5
			var total time.Duration
			for i := 0; i < n; i++ {
				args := append(append([]string{"run", "--rm", "--runtime", rt}, b.extra...), env.Image, fmt.Sprintf("pve-t%d", i), "echo", "hello")
				t0 := time.Now()
				out, errOut, code := env.Ctr(args...)
				total += time.Since(t0)
				if code != 0 || out != "hello\n" {
					t.Fatalf("%s: exit %d %q %s", b.name, code, out, errOut)
				}
			}
			t.Logf("ctr run --rm echo hello on %s: mean %v over %d runs", b.name, total/n, n)
		}
		env.assertNoCT(t)
	})
}
