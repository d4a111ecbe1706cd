//go:build linux

// Package lxcri tests the operator's tool, cmd/lxcri, against this host and a private
// containerd whose lxcri shims run real containers on a zfs-fuse pool.
package lxcri

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lxcri/lxcri/integration/harness"
	"github.com/lxcri/lxcri/integration/zfstest"
)

// build compiles cmd/lxcri into bin, beside a link to the shim's start helper so that the
// helper check finds it as it would after `make install`.
func build(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "lxcri")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/lxcri")
	cmd.Dir = harness.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/lxcri: %v\n%s", err, out)
	}
	return bin
}

// lxcri runs the tool with the environment env (added to the test's) and returns stdout,
// stderr and the exit code.
func lxcri(t *testing.T, bin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("lxcri %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

type result struct {
	Backend, Name, Status, Detail, Fix string
}

func checkJSON(t *testing.T, out string) map[string]result {
	t.Helper()
	var r struct {
		Status  string
		Results []result
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("lxcri check --json: %v\n%s", err, out)
	}
	m := map[string]result{}
	for _, x := range r.Results {
		m[x.Backend+": "+x.Name] = x
	}
	return m
}

func want(t *testing.T, rs map[string]result, key, status, detail string) {
	t.Helper()
	r, ok := rs[key]
	if !ok {
		t.Errorf("check has no line %q", key)
		return
	}
	if r.Status != status || !strings.Contains(r.Detail, detail) {
		t.Errorf("%s: %s %q, want %s with %q", key, r.Status, r.Detail, status, detail)
	}
	if status != "ok" && r.Fix == "" {
		t.Errorf("%s: %s without a fix", key, r.Status)
	}
}

// TestCheck: on this host liblxc and the start helper are ok, CRIU's failing kernel
// detection is a warning, and the ZFS line is ok while a pool for [zfs] dataset is up, a
// failure naming the pool once it is gone.
func TestCheck(t *testing.T) {
	bin := build(t)
	pool, destroy := zfstest.Pool(t)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	body := fmt.Sprintf("[zfs]\ndataset = %q\n[lxc]\nhelper = %q\n", pool+"/lxcri", filepath.Join(harness.ShimDir(), "lxcri-start"))
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"LXCRI_CONFIG=" + cfg, "PATH=" + harness.ShimDir() + ":" + os.Getenv("PATH")}

	out, _, _ := lxcri(t, bin, env, "check", "--json")
	rs := checkJSON(t, out)
	want(t, rs, "host: configuration", "ok", cfg)
	want(t, rs, "host: shim", "ok", "containerd-shim-lxcri-v2")
	want(t, rs, "lxc: liblxc", "ok", "version 5.")
	want(t, rs, "lxc: start helper", "ok", "links liblxc")
	want(t, rs, "checkpoint: CRIU", "warn", "criu check failed")
	want(t, rs, "zfs: pool and dataset", "ok", "pool "+pool+" ONLINE")
	want(t, rs, "crun: runc", "ok", "runc version")

	// human output: one line per result, with ok/warn/fail first
	text, _, _ := lxcri(t, bin, env, "check")
	t.Logf("lxcri check:\n%s", text)
	if !strings.Contains(text, "ok    lxc: liblxc") || !strings.Contains(text, "warn  checkpoint: CRIU") {
		t.Errorf("lxcri check prints:\n%s", text)
	}

	destroy()
	out, _, code := lxcri(t, bin, env, "check", "--json", "--backend", "zfs")
	rs = checkJSON(t, out)
	want(t, rs, "zfs: pool and dataset", "fail", "pool "+pool)
	if code != 1 {
		t.Errorf("lxcri check with a failing check exits %d, want 1", code)
	}
}

// TestListStateConfig: list, state and config show the containers of a private containerd,
// with their backend, status, PID and ZFS dataset; once deleted, a container is gone.
func TestListStateConfig(t *testing.T) {
	bin := build(t)
	pool, _ := zfstest.Pool(t)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("[zfs]\ndataset = %q\n", pool+"/lxcri")), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("lxcri-tool%d", os.Getpid())
	env := harness.Start(t, harness.WithNamespace(ns), harness.WithDaemonEnv("LXCRI_CONFIG="+cfg))
	root := filepath.Join(env.Root, "state")

	if _, stderr, code := env.Ctr("run", "-d", "--runtime", "io.containerd.lxcri.v2", env.Image, "c1", "sleep", "1000"); code != 0 {
		t.Fatalf("ctr run: %s", stderr)
	}
	if _, stderr, code := env.Ctr("run", "-d", "--runtime", "io.containerd.lxcri.v2", "--runtime-config-path", cfg, env.Image, "c2", "sh", "-c", "exit 3"); code != 0 {
		t.Fatalf("ctr run: %s", stderr)
	}
	waitFor(t, func() bool {
		out, _, _ := env.Ctr("task", "ls")
		return strings.Contains(out, "STOPPED")
	})

	out, stderr, code := lxcri(t, bin, nil, "list", "--root", root, "--json")
	if code != 0 {
		t.Fatalf("lxcri list: %d %s", code, stderr)
	}
	var cs []struct {
		Namespace, ID, Backend, Status, Dataset string
		Pid                                     uint32
		ExitStatus                              *uint32 `json:"exit_status"`
	}
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(cs) != 2 {
		t.Fatalf("lxcri list shows %d containers, want 2:\n%s", len(cs), out)
	}
	c1, c2 := cs[0], cs[1]
	if c1.ID != "c1" || c1.Namespace != ns || c1.Backend != "lxc" || c1.Status != "running" || c1.Pid == 0 ||
		c1.Dataset != pool+"/lxcri/ct-"+ns+"--c1" {
		t.Errorf("c1 is %+v", c1)
	}
	if c2.ID != "c2" || c2.Status != "stopped" || c2.ExitStatus == nil || *c2.ExitStatus != 3 {
		t.Errorf("c2 is %+v", c2)
	}

	text, _, _ := lxcri(t, bin, nil, "list", "--root", root)
	if !strings.Contains(text, "BACKEND") || !strings.Contains(text, "stopped (exit 3)") || !strings.Contains(text, "ct-"+ns+"--c1") {
		t.Errorf("lxcri list prints:\n%s", text)
	}
	st, _, code := lxcri(t, bin, nil, "state", "c1", "--root", root)
	if code != 0 || !strings.Contains(st, "running") || !strings.Contains(st, pool+"/lxcri/ct-"+ns+"--c1") {
		t.Errorf("lxcri state c1 (exit %d):\n%s", code, st)
	}
	if _, stderr, code := lxcri(t, bin, nil, "state", "nope", "--root", root); code == 0 || !strings.Contains(stderr, `no lxcri container "nope"`) {
		t.Errorf("lxcri state nope: exit %d, %s", code, stderr)
	}
	conf, _, code := lxcri(t, bin, nil, "config", "c1", "--root", root)
	if code != 0 || !strings.Contains(conf, "dataset = '"+pool+"/lxcri'") {
		t.Errorf("lxcri config c1 (exit %d):\n%s", code, conf)
	}

	for _, id := range []string{"c1", "c2"} {
		env.Ctr("task", "kill", "-s", "SIGKILL", id)
	}
	waitFor(t, func() bool {
		out, _, _ := env.Ctr("task", "ls")
		return !strings.Contains(out, "RUNNING")
	})
	for _, id := range []string{"c1", "c2"} {
		env.Ctr("task", "rm", id)
		env.Ctr("container", "rm", id)
	}
	out, _, _ = lxcri(t, bin, nil, "list", "--root", root, "--json")
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("after deleting the containers lxcri list shows %s", out)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
