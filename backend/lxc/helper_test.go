package lxc

// Real-container tests of what lxcri-start guards: spec data off command lines, the
// environment passed exactly, no fd leaked into the container, rlimits up to
// RLIM_INFINITY, and a timed-out hook's whole process group killed.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/backend/lxcstart"
	"github.com/lxcri/lxcri/runtime"
)

// cmdlinesHolding lists the host processes whose command line holds s.
func cmdlinesHolding(s string) []string {
	var found []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(b, []byte(s)) {
			found = append(found, fmt.Sprintf("pid %s: %q", e.Name(), bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		}
	}
	return found
}

// environOf is the environment process pid was exec'ed with. Start returns once the
// process's exe changed, which is before its new environment is set up: retry while it
// reads empty.
func environOf(t *testing.T, pid int) []string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			t.Fatalf("environ of %d: %v", pid, err)
		}
		if len(b) > 0 || time.Now().After(deadline) {
			return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		}
		time.Sleep(time.Millisecond)
	}
}

func randomSecret(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "s3cr3t-" + hex.EncodeToString(b)
}

// fdsOf lists the open fds of process pid; call it after environOf, which waits for the
// exec to complete (close-on-exec fds are closed after the exe changed).
func fdsOf(t *testing.T, pid int) []string {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("fds of %d: %v", pid, err)
	}
	var fds []string
	for _, e := range ents {
		fds = append(fds, e.Name())
	}
	slices.SortFunc(fds, func(a, b string) int { return mustAtoi(a) - mustAtoi(b) })
	return fds
}

// TestLXCSecretsOffCmdline: a secret in the init's or an exec'ed process's environment is
// on no host command line while they run (the start helper is the container's monitor for
// its whole life); the environment reaches them exactly (their /proc/PID/environ), and the
// helper leaks no fd into them (only 0, 1 and 2 are open). The processes are sleep itself,
// not a shell, whose own fds and variables would blur both.
func TestLXCSecretsOffCmdline(t *testing.T) {
	ctx := testCtx()
	secret := randomSecret(t)
	var initEnv []string
	c := newTestContainer(t, ctx, func(s *specs.Spec) {
		s.Process.Env = append(s.Process.Env, "LXCRI_SECRET="+secret, "ODD=a b\nc='d' \"e\" =f")
		initEnv = s.Process.Env
		s.Process.Args = []string{"/bin/sleep", "100"}
	})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if found := cmdlinesHolding(secret); len(found) > 0 {
		t.Errorf("the init's secret is on host command lines:\n%s", strings.Join(found, "\n"))
	}
	// liblxc adds container=lxc after the spec's variables
	want := append(slices.Clone(initEnv), "container=lxc")
	if got := environOf(t, c.Init().Pid()); !slices.Equal(got, want) {
		t.Errorf("init environment\n got %q\nwant %q", got, want)
	}
	if fds := fdsOf(t, c.Init().Pid()); !slices.Equal(fds, []string{"0", "1", "2"}) {
		for _, fd := range fds {
			l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", c.Init().Pid(), fd))
			t.Logf("fd %s: %s", fd, l)
		}
		t.Errorf("the init has fds %v open, want 0 1 2", fds)
	}

	for _, terminal := range []bool{false, true} {
		name := fmt.Sprintf("secret-tty-%v", terminal)
		t.Run(name, func(t *testing.T) {
			secret := randomSecret(t)
			p := *baseSpec(t).Process
			p.Terminal = terminal
			p.Env = []string{"PATH=/bin", "LXCRI_SECRET2=" + secret, "ODD=x\ty\nz= "}
			p.Args = []string{"/bin/sleep", "100"}
			tio := newTestIO(t, ctx, name, terminal, false)
			proc, err := c.Exec(ctx, &runtime.ExecRequest{ID: name, Spec: &p, IO: tio.io})
			if err != nil {
				t.Fatal(err)
			}
			if err := proc.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer func() {
				proc.Kill(ctx, syscall.SIGKILL)
				c.wait(proc, 10*time.Second)
				tio.drain(ctx, proc)
			}()
			if found := cmdlinesHolding(secret); len(found) > 0 {
				t.Errorf("the exec's secret is on host command lines:\n%s", strings.Join(found, "\n"))
			}
			if got := environOf(t, proc.Pid()); !slices.Equal(got, p.Env) {
				t.Errorf("exec environment\n got %q\nwant %q", got, p.Env)
			}
			if fds := fdsOf(t, proc.Pid()); !slices.Equal(fds, []string{"0", "1", "2"}) {
				t.Errorf("the exec'ed process has fds %v open, want 0 1 2", fds)
			}
		})
	}
}

// TestLXCExecRlimits: rlimit values above LLONG_MAX reach the exec'ed process exactly.
func TestLXCExecRlimits(t *testing.T) {
	ctx := testCtx()
	c := newTestContainer(t, ctx, func(s *specs.Spec) { s.Process.Args = []string{"/bin/sleep", "100"} })
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	p := *baseSpec(t).Process
	p.Args = []string{"/bin/cat", "/proc/self/limits"}
	p.Rlimits = []specs.POSIXRlimit{
		{Type: "RLIMIT_FSIZE", Soft: 1 << 63, Hard: ^uint64(0) - 1},
		{Type: "RLIMIT_CORE", Soft: ^uint64(0) - 1, Hard: ^uint64(0) - 1},
		{Type: "RLIMIT_DATA", Soft: 1 << 63, Hard: ^uint64(0)},
	}
	tio := newTestIO(t, ctx, "limits", false, false)
	proc, err := c.Exec(ctx, &runtime.ExecRequest{ID: "limits", Spec: &p, IO: tio.io})
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if e := c.wait(proc, 10*time.Second); e.Status != 0 {
		t.Errorf("status %d, stderr %q", e.Status, tio.stderr())
	}
	tio.drain(ctx, proc)
	limits := map[string][]string{}
	for _, l := range strings.Split(tio.stdout(), "\n") {
		if i := strings.Index(l, "  "); i > 0 {
			limits[l[:i]] = strings.Fields(l[i:])
		}
	}
	for name, want := range map[string][]string{
		"Max file size":      {"9223372036854775808", "18446744073709551614"},
		"Max core file size": {"18446744073709551614", "18446744073709551614"},
		"Max data size":      {"9223372036854775808", "unlimited"},
	} {
		if got := limits[name]; len(got) < 2 || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("%s: %q, want soft %s hard %s", name, got, want[0], want[1])
		}
	}
}

// TestLXCHookTimeoutKillsGroup: a createRuntime hook that outlives its timeout fails
// Create with a timeout error, and what it started in the background dies with it (a
// sleeper left behind would also hold liblxc's hook output pipe and block Create).
func TestLXCHookTimeoutKillsGroup(t *testing.T) {
	ctx := testCtx()
	dir := t.TempDir()
	bgPid := filepath.Join(dir, "bg.pid")
	hook := filepath.Join(dir, "hook.sh")
	os.WriteFile(hook, []byte("#!/bin/sh\nsleep 1000 &\necho $! > "+bgPid+"\necho $$ > "+bgPid+".fg\nexec sleep 1000\n"), 0o755)
	type result struct {
		c   *testContainer
		err error
	}
	lxcEnv(t) // its failures end the test here, not in the goroutine
	done := make(chan result, 1)
	go func() {
		c, err := createTestContainer(t, ctx, func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: hook, Timeout: ptr(1)}}}
		})
		done <- result{c, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Error("Create did not return within 20s of a hook timing out after 1s")
		for _, f := range []string{bgPid, bgPid + ".fg"} {
			if b, err := os.ReadFile(f); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		res = <-done
	}
	if res.err == nil || !strings.Contains(res.err.Error(), "timed out") {
		t.Errorf("create: %v, want a hook timeout error", res.err)
	} else {
		t.Logf("create error: %v", res.err)
	}
	for _, f := range []string{bgPid, bgPid + ".fg"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("the hook did not run: %v", err)
		}
		pid := strings.TrimSpace(string(b))
		deadline := time.Now().Add(2 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(pid) {
			syscall.Kill(mustAtoi(pid), syscall.SIGKILL)
			t.Errorf("the hook's process %s (%s) survived its timeout", pid, f)
		}
	}
}

// alive tells whether pid runs (a zombie does not).
func alive(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || len(b) < i+3 || b[i+2] != 'Z'
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestRunHookTimeoutKillsGroup: a poststart/poststop hook (run by the shim) that outlives
// its timeout is killed with everything it started.
func TestRunHookTimeoutKillsGroup(t *testing.T) {
	_, _, exits := lxcEnv(t)
	dir := t.TempDir()
	bgPid := filepath.Join(dir, "bg.pid")
	hook := filepath.Join(dir, "hook.sh")
	os.WriteFile(hook, []byte("#!/bin/sh\nsleep 1000 &\necho $! > "+bgPid+"\nexec sleep 1000\n"), 0o755)
	c := &container{id: "hook-test", exits: exits}
	t0 := time.Now()
	err := c.runHook(testCtx(), specs.Hook{Path: hook, Timeout: ptr(1)}, []byte("{}"))
	if err == nil || !strings.Contains(err.Error(), "timed out") || time.Since(t0) > 5*time.Second {
		t.Errorf("hook: %v after %v, want a timeout error after 1s", err, time.Since(t0))
	}
	b, err := os.ReadFile(bgPid)
	if err != nil {
		t.Fatalf("the hook did not run: %v", err)
	}
	pid := strings.TrimSpace(string(b))
	deadline := time.Now().Add(2 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		syscall.Kill(mustAtoi(pid), syscall.SIGKILL)
		t.Errorf("the hook's background process %s survived its timeout", pid)
	}
}

// TestLXCRefusedConfiguration: a configuration liblxc refuses fails the start helper's load
// with an "invalid" report naming the file (the shim links no liblxc to check it itself),
// and the shim makes that InvalidArgument, the other failures FailedPrecondition.
func TestLXCRefusedConfiguration(t *testing.T) {
	helper, _, _ := lxcEnv(t)
	lxcpath := t.TempDir()
	if err := os.MkdirAll(filepath.Join(lxcpath, "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(lxcpath, "c", configFile)
	if err := os.WriteFile(cfg, []byte("lxc.no.such.key = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := initSpec(&InitProcess{Args: []string{"/bin/true"}})
	if err != nil {
		t.Fatal(err)
	}
	reportR, reportW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer reportR.Close()
	specR, specW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(helper, lxcstart.Args("start", "c", lxcpath)...)
	cmd.ExtraFiles = []*os.File{reportW, nil, nil, specR}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reportW.Close()
	specR.Close()
	lxcstart.SendSpec(specW, spec)
	report, _ := io.ReadAll(reportR)
	err = cmd.Wait()
	line := strings.TrimSpace(string(report))
	if !strings.HasPrefix(line, "invalid ") || !strings.Contains(line, cfg) {
		t.Errorf("report %q (exit %v), want an invalid line naming %s", line, err, cfg)
	}

	// The report's kinds as the shim reads them.
	for _, tc := range []struct {
		line string
		want error
	}{
		{line, errdefs.ErrInvalidArgument},
		{"error container c is not defined", errdefs.ErrFailedPrecondition},
	} {
		c := &container{id: "c", dir: t.TempDir()}
		h := &helperRun{p: &process{c: c, init: true}, done: make(chan struct{})}
		close(h.done)
		h.handle(tc.line)
		err := h.result(context.Background(), nil)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), strings.SplitN(tc.line, " ", 2)[1]) {
			t.Errorf("report %q: %v, want %v with its message", tc.line, err, tc.want)
		}
	}
}
