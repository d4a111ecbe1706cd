//go:build linux

package shim_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"

	"github.com/lxcri/lxcri/integration/harness"
)

// ctrOK runs ctr and fails the test unless it exits 0.
func ctrOK(t *testing.T, env *harness.Env, args ...string) string {
	t.Helper()
	out, errOut, code := env.Ctr(args...)
	if code != 0 {
		t.Fatalf("ctr %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// runDetached starts a long-running task through the lxcri shim.
func runDetached(t *testing.T, env *harness.Env, id string, extra []string, args ...string) {
	t.Helper()
	a := append([]string{"run", "-d", "--runtime", rt}, extra...)
	a = append(a, env.Image, id)
	ctrOK(t, env, append(a, args...)...)
	waitRunning(t, env, id)
}

// removeTask kills (SIGKILL), deletes the task and the container.
func removeTask(t *testing.T, env *harness.Env, id string) {
	t.Helper()
	env.Ctr("task", "kill", "-s", "SIGKILL", id)
	waitStatus(t, env, id, "STOPPED")
	ctrOK(t, env, "task", "rm", id)
	ctrOK(t, env, "container", "rm", id)
}

// taskStatus reads the task's status column from `ctr task ls`.
func taskStatus(env *harness.Env, id string) string {
	out, _, _ := env.Ctr("task", "ls")
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == id {
			return f[2]
		}
	}
	return ""
}

func waitStatus(t *testing.T, env *harness.Env, id, status string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if taskStatus(env, id) == status {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("task %s is %q, not %s, after 20s", id, taskStatus(env, id), status)
}

// waitRunning waits until `ctr task ls` shows the task RUNNING.
func waitRunning(t *testing.T, env *harness.Env, id string) {
	t.Helper()
	waitStatus(t, env, id, "RUNNING")
}

// taskPid is the init's host pid from `ctr task ls`.
func taskPid(t *testing.T, env *harness.Env, id string) int {
	t.Helper()
	out := ctrOK(t, env, "task", "ls")
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == id {
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("pid of %s: %q", id, f[1])
			}
			return pid
		}
	}
	t.Fatalf("task %s not listed: %s", id, out)
	return 0
}

// cgroupFile reads a file of the v1 hierarchy `controller` in the cgroup of pid.
func cgroupFile(t *testing.T, pid int, controller, file string) string {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) == 3 {
			for _, c := range strings.Split(parts[1], ",") {
				if c == controller {
					b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, parts[2], file))
					if err != nil {
						t.Fatal(err)
					}
					return strings.TrimSpace(string(b))
				}
			}
		}
	}
	t.Fatalf("pid %d has no %s cgroup", pid, controller)
	return ""
}

// ctrWithTTY runs ctr with a pseudo-terminal as its stdin, stdout and stderr, as a user at
// a terminal would, feeding input and returning what the terminal showed.
func ctrWithTTY(t *testing.T, env *harness.Env, input string, args ...string) (string, int) {
	t.Helper()
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	slave, err := os.OpenFile(slavePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"-a", env.Socket, "-n", env.Namespace}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(env.ToolsDir, "ctr"), full...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var buf bytes.Buffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&buf, master)
		close(copied)
	}()
	if input != "" {
		time.Sleep(300 * time.Millisecond)
		master.Write([]byte(input))
	}
	err = cmd.Wait()
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ctr with tty: %v", err)
	}
	return buf.String(), code
}

func contextWithCancel(env *harness.Env) (context.Context, context.CancelFunc) {
	return context.WithCancel(env.Context())
}
