//go:build linux

package shim_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lxcri/lxcri/integration/harness"
)

// TestMain runs the suite, then checks that nothing the tests made outlived them: no lxcri
// shim process, no mount under a test containerd root, no container state and no
// container cgroup. Each test's harness removes its containerd; what is checked here is
// what lxcri itself must have cleaned up.
func TestMain(m *testing.M) {
	code := m.Run()
	if leaks := suiteLeaks(); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "leftovers after the suite:\n  %s\n", strings.Join(leaks, "\n  "))
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func suiteLeaks() []string {
	var leaks []string
	for _, pid := range harness.ShimProcesses() {
		if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(cmd), nsPrefix) {
			leaks = append(leaks, fmt.Sprintf("shim process %d", pid))
		}
	}
	roots, _ := filepath.Glob("/tmp/lxcri-h*")
	for _, r := range roots {
		for _, m := range harness.MountsUnder(r) {
			if strings.Contains(m, "/"+nsPrefix) {
				leaks = append(leaks, "mount "+m)
			}
		}
	}
	// Container state lives in <state_dir>/<namespace>/<id>.
	states, _ := filepath.Glob("/run/lxcri/" + nsPrefix + "*/*")
	for _, s := range states {
		leaks = append(leaks, "state "+s)
	}
	for _, cg := range containerCgroups(nsPrefix) {
		leaks = append(leaks, "cgroup "+cg)
	}
	return leaks
}

// containerCgroups lists the container cgroups under the cgroups named after namespaces
// matching ns. containerd's clients place a container at /<namespace>/<id>; the namespace
// level is shared by the namespace's containers, as with containerd's runc shim.
func containerCgroups(ns string) []string {
	var out []string
	for _, dir := range harness.CgroupsNamed(ns) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	return out
}
