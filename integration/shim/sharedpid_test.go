//go:build linux

package shim_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lxcri/lxcri/integration/harness"
)

// TestSharedPIDNamespaceExit: a container that joins another's pid namespace leaves a
// background process behind when its init exits; the shim kills it, so that nothing is
// left in the container's cgroup, Delete succeeds and no cgroup leaks.
func TestSharedPIDNamespaceExit(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			runDetached(t, env, "pid-a", nil, "sleep", "3000")
			pidA := taskPid(t, env, "pid-a")

			ctrOK(t, env, "run", "-d", "--runtime", rt, "--with-ns", fmt.Sprintf("pid:/proc/%d/ns/pid", pidA),
				env.Image, "pid-b", "sh", "-c", "sleep 1000 & exit 0")
			waitStatus(t, env, "pid-b", "STOPPED")

			// The background sleep is killed right after the init's exit, not at Delete.
			deadline := time.Now().Add(10 * time.Second)
			left := cgroupProcsOf(env.Namespace, "pid-b")
			for len(left) > 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
				left = cgroupProcsOf(env.Namespace, "pid-b")
			}
			if len(left) > 0 {
				t.Errorf("processes left in pid-b's cgroup 10s after its init exited: %v", left)
			}
			ctrOK(t, env, "task", "rm", "pid-b")
			ctrOK(t, env, "container", "rm", "pid-b")
			if cg := cgroupsOf(env.Namespace, "pid-b"); len(cg) > 0 {
				t.Errorf("pid-b's cgroups left after Delete: %v", cg)
			}
			removeTask(t, env, "pid-a")
			assertHealthyAndClean(t, env)
		})
	}
}

// cgroupsOf lists container id's cgroup folders: <namespace cgroup>/<id> in every hierarchy.
func cgroupsOf(ns, id string) []string {
	var out []string
	for _, dir := range harness.CgroupsNamed(ns) {
		p := filepath.Join(dir, id)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// cgroupProcsOf lists "cgroup: pids" for every cgroup at or under container id's cgroups
// that holds processes.
func cgroupProcsOf(ns, id string) []string {
	var out []string
	for _, root := range cgroupsOf(ns, id) {
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err == nil && len(strings.TrimSpace(string(b))) > 0 {
				out = append(out, p+": "+strings.Join(strings.Fields(string(b)), ","))
			}
			return nil
		})
	}
	return out
}
