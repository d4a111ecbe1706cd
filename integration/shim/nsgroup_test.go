//go:build linux

package shim_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lxcri/lxcri/integration/harness"
)

// TestNamespaceGrouping: with shim_group = "namespace" the containers of a namespace share
// one shim process, and another namespace gets its own; an annotated group still gets its
// own shim. The shim exits with its last container, and a crash of it ends every container
// it serves (the trade-off docs/configuration.md states), leaving nothing behind.
func TestNamespaceGrouping(t *testing.T) {
	for _, b := range backends()[:2] { // lxc, crun-runc
		t.Run(b.name, func(t *testing.T) {
			b.config = "shim_group = \"namespace\"\n" + b.config // before any table
			other := fmt.Sprintf("%s%d", nsPrefix, nsSeq.Add(1))
			env := start(t, b, harness.WithExtraNamespaces(other))
			runDetached(t, env, "na", nil, "sleep", "1000")
			runDetached(t, env, "nb", nil, "sleep", "1000")
			if shims := env.ShimProcesses(); len(shims) != 1 {
				t.Fatalf("two containers of a namespace run %d shim processes %v, want 1", len(shims), shims)
			}
			runDetached(t, env.In(other), "nc", nil, "sleep", "1000")
			runDetached(t, env, "nd", []string{"--annotation", "io.containerd.lxcri.v2.group=g1"}, "sleep", "1000")
			if shims := env.ShimProcesses(); len(shims) != 3 {
				t.Fatalf("two namespaces and an annotated group run %d shim processes %v, want 3", len(shims), shims)
			}
			removeTask(t, env.In(other), "nc")
			removeTask(t, env, "nd")
			waitShims(t, env, 1)

			// A crash of the namespace's shim ends both of its containers.
			pids := []int{taskPid(t, env, "na"), taskPid(t, env, "nb")}
			syscall.Kill(env.ShimProcesses()[0], syscall.SIGKILL)
			deadline := time.Now().Add(20 * time.Second)
			for _, id := range []string{"na", "nb"} {
				for taskStatus(env, id) != "" && time.Now().Before(deadline) {
					time.Sleep(100 * time.Millisecond)
				}
				if st := taskStatus(env, id); st != "" {
					t.Fatalf("task %s still listed as %s after its shim died", id, st)
				}
				ctrOK(t, env, "container", "rm", id)
			}
			for _, pid := range pids {
				for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
					time.Sleep(100 * time.Millisecond)
				}
				if syscall.Kill(pid, 0) == nil {
					t.Errorf("container init %d survived its shim's crash", pid)
				}
			}
			for _, id := range []string{"na", "nb"} {
				stateDir := filepath.Join("/run/lxcri", env.Namespace, id)
				for _, err := os.Stat(stateDir); err == nil && time.Now().Before(deadline); _, err = os.Stat(stateDir) {
					time.Sleep(50 * time.Millisecond)
				}
				if _, err := os.Stat(stateDir); err == nil {
					t.Errorf("state of crashed container %s left behind", id)
				}
			}
			waitNoShim(t, env)

			// With the namespace's shim gone, the next container starts a new one, which
			// exits with its last container.
			runDetached(t, env, "ne", nil, "sleep", "1000")
			if shims := env.ShimProcesses(); len(shims) != 1 {
				t.Fatalf("%d shim processes, want 1", len(shims))
			}
			removeTask(t, env, "ne")
			waitNoShim(t, env)
			assertHealthyAndClean(t, env)
		})
	}
}

// waitShims waits until env runs n shim processes.
func waitShims(t *testing.T, env interface{ ShimProcesses() []int }, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(env.ShimProcesses()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("shim processes %v, want %d", env.ShimProcesses(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
