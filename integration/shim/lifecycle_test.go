//go:build linux

package shim_test

import (
	"strconv"

	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"strings"
	"testing"
	"time"
)

// TestExec covers `ctr task exec`: plain, with a terminal, with stdin piped, and a
// non-interactive exec reading stdin that ends when the client closes stdin.
func TestExec(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			runDetached(t, env, "ex", nil, "sleep", "1000")
			defer removeTask(t, env, "ex")

			out, errOut, code := env.Ctr("task", "exec", "--exec-id", "e1", "ex", "sh", "-c", "echo out; echo err >&2; exit 5")
			if code != 5 || out != "out\n" || !strings.Contains(errOut, "err") {
				t.Errorf("exec: exit %d stdout %q stderr %q, want 5, %q, err", code, out, errOut, "out\n")
			}

			out, code = ctrWithTTY(t, env, "", "task", "exec", "-t", "--exec-id", "e2", "ex", "sh", "-c", "tty; stty size")
			if code != 0 || !strings.Contains(out, "/dev/pts/") {
				t.Errorf("exec -t: exit %d, output %q, want a /dev/pts terminal", code, out)
			}

			out, code = ctrWithTTY(t, env, "echo typed-$((6*7))\rexit 3\r", "task", "exec", "-t", "--exec-id", "e3", "ex", "sh")
			if code != 3 || !strings.Contains(out, "typed-42") {
				t.Errorf("interactive exec -t: exit %d, output %q, want exit 3 and typed-42", code, out)
			}

			out, errOut, code = env.CtrStdin(strings.NewReader("line1\nline2\n"), "task", "exec", "--exec-id", "e4", "ex", "wc", "-l")
			if code != 0 || strings.TrimSpace(out) != "2" {
				t.Errorf("exec with piped stdin: exit %d stdout %q stderr %q, want 2", code, out, errOut)
			}

			// `cat` only ends when its stdin closes: ctr closes it (CloseIO) at EOF of its own.
			done := make(chan string, 1)
			go func() {
				out, _, code := env.CtrStdin(strings.NewReader("data"), "task", "exec", "--exec-id", "e5", "ex", "cat")
				done <- strconv.Itoa(code) + ":" + out
			}()
			select {
			case got := <-done:
				if got != "0:data" {
					t.Errorf("exec cat with closed stdin: got %q, want 0:data", got)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("exec reading stdin did not end when stdin closed")
			}

			// An exec whose program does not exist fails to start, and leaves nothing behind:
			// its id is free again and the task still works.
			if _, _, code := env.Ctr("task", "exec", "--exec-id", "e6", "ex", "/no/such/program"); code == 0 {
				t.Errorf("exec of a missing program succeeded")
			}
			if out, errOut, code := env.Ctr("task", "exec", "--exec-id", "e6", "ex", "echo", "again"); code != 0 || out != "again\n" {
				t.Errorf("exec with the id of a failed exec: exit %d %q %s", code, out, errOut)
			}
		})
	}
}

// TestPsMetricsPauseUpdate covers ps, metrics, pause/resume and update of a running task.
func TestPsMetricsPauseUpdate(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			runDetached(t, env, "pm", nil, "sh", "-c", "sleep 1000 & sleep 1000")
			defer removeTask(t, env, "pm")
			pid := taskPid(t, env, "pm")

			out := ctrOK(t, env, "task", "ps", "pm")
			if n := len(strings.Split(strings.TrimSpace(out), "\n")) - 1; n < 2 || !strings.Contains(out, strconv.Itoa(pid)) {
				t.Errorf("task ps: %d processes, want init %d and its child:\n%s", n, pid, out)
			}

			out = ctrOK(t, env, "task", "metrics", "pm")
			if v := metric(out, "memory.usage_in_bytes"); v <= 0 {
				t.Errorf("metrics: memory.usage_in_bytes %d, want > 0:\n%s", v, out)
			}
			if v := metric(out, "pids.current"); v < 2 {
				t.Errorf("metrics: pids.current %d, want >= 2:\n%s", v, out)
			}

			ctrOK(t, env, "task", "pause", "pm")
			if st := taskStatus(env, "pm"); st != "PAUSED" {
				t.Errorf("after pause the task is %s", st)
			}
			if st := cgroupFile(t, pid, "freezer", "freezer.state"); st != "FROZEN" {
				t.Errorf("after pause freezer.state is %s", st)
			}
			if _, _, code := env.Ctr("task", "pause", "pm"); code == 0 {
				t.Errorf("pausing a paused task succeeded")
			}
			ctrOK(t, env, "task", "resume", "pm")
			if st := taskStatus(env, "pm"); st != "RUNNING" {
				t.Errorf("after resume the task is %s", st)
			}

			// ctr has no update command: this is what the kubelet's UpdateContainerResources does.
			_, err := env.Client().TaskService().Update(env.Context(), &tasks.UpdateTaskRequest{
				ContainerID: "pm",
				Resources:   typeurl.MarshalProto(mustAny(t, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(67108864))}})),
			})
			if err != nil {
				t.Fatalf("update: %v", err)
			}
			if v := cgroupFile(t, pid, "memory", "memory.limit_in_bytes"); v != "67108864" {
				t.Errorf("after update memory.limit_in_bytes is %s, want 67108864", v)
			}
		})
	}
}

func metric(out, name string) int64 {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return -1
}

// TestKillAll: `ctr task kill --all` reaches every process of the container.
func TestKillAll(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			// The shell as init ignores SIGTERM-less signals it has no handler for only as
			// PID 1; its children do not, and the init ends once they die.
			runDetached(t, env, "ka", nil, "sh", "-c", "sleep 1000 & sleep 1001 & wait")
			ctrOK(t, env, "task", "kill", "--all", "-s", "SIGKILL", "ka")
			waitStatus(t, env, "ka", "STOPPED")
			ctrOK(t, env, "task", "rm", "ka")
			ctrOK(t, env, "container", "rm", "ka")
		})
	}
}

func ptr[T any](v T) *T { return &v }

func mustAny(t *testing.T, v any) typeurl.Any {
	t.Helper()
	a, err := typeurl.MarshalAny(v)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
