//go:build linux

package shim_test

import (
	"testing"
	"time"
)

// TestGrouping: containers with one group annotation share a single shim process, which
// stays while one of them lives and exits after the last.
func TestGrouping(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			group := []string{"--annotation", "io.containerd.lxcri.v2.group=g1"}
			runDetached(t, env, "ga", group, "sleep", "1000")
			runDetached(t, env, "gb", group, "sleep", "1000")
			if shims := env.ShimProcesses(); len(shims) != 1 {
				t.Fatalf("two grouped containers run %d shim processes %v, want 1", len(shims), shims)
			}
			removeTask(t, env, "ga")
			if out := ctrOK(t, env, "task", "exec", "--exec-id", "after", "gb", "echo", "still-here"); out != "still-here\n" {
				t.Errorf("exec into the second container after the first left: %q", out)
			}
			if shims := env.ShimProcesses(); len(shims) != 1 {
				t.Fatalf("after the first container left, %d shim processes, want 1", len(shims))
			}
			removeTask(t, env, "gb")
			waitNoShim(t, env)
		})
	}
}

// TestContainerdRestart: a task outlives a containerd restart and can be used afterwards.
func TestContainerdRestart(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			runDetached(t, env, "rs", nil, "sleep", "1000")
			env.Restart()
			if st := taskStatus(env, "rs"); st != "RUNNING" {
				t.Fatalf("after a containerd restart the task is %q", st)
			}
			if out := ctrOK(t, env, "task", "exec", "--exec-id", "r1", "rs", "echo", "after-restart"); out != "after-restart\n" {
				t.Errorf("exec after restart: %q", out)
			}
			removeTask(t, env, "rs")
			waitNoShim(t, env)
		})
	}
}

func waitNoShim(t *testing.T, env interface{ ShimProcesses() []int }) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(env.ShimProcesses()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("shim processes %v still running after their tasks were deleted", env.ShimProcesses())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
