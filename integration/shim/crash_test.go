//go:build linux

package shim_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestShimCrash: when a shim dies, containerd runs `containerd-shim-lxcri-v2 delete`,
// which must remove the container (its processes, rootfs mount and state) so that
// nothing is orphaned.
func TestShimCrash(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			runDetached(t, env, "cr", nil, "sleep", "1000")
			initPid := taskPid(t, env, "cr")
			shims := env.ShimProcesses()
			if len(shims) != 1 {
				t.Fatalf("%d shim processes, want 1", len(shims))
			}
			syscall.Kill(shims[0], syscall.SIGKILL)

			deadline := time.Now().Add(20 * time.Second)
			for taskStatus(env, "cr") != "" && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if st := taskStatus(env, "cr"); st != "" {
				t.Fatalf("task still listed as %s after its shim died", st)
			}
			for syscall.Kill(initPid, 0) == nil && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if syscall.Kill(initPid, 0) == nil {
				t.Errorf("container init %d survived its shim's crash", initPid)
			}
			ctrOK(t, env, "container", "rm", "cr")
			stateDir := filepath.Join("/run/lxcri", env.Namespace, "cr")
			for _, err := os.Stat(stateDir); err == nil && time.Now().Before(deadline); _, err = os.Stat(stateDir) {
				time.Sleep(50 * time.Millisecond)
			}
			if _, err := os.Stat(stateDir); err == nil {
				t.Errorf("state of the crashed container left behind")
			}
			assertHealthyAndClean(t, env)
		})
	}
}
