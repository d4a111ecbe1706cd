//go:build linux

package shim_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxcri/lxcri/integration/harness"
)

// backendCase is one backend configuration every lifecycle test runs against.
type backendCase struct {
	name   string
	config string // host configuration TOML given to the shim through LXCRI_CONFIG
	setup  func(t *testing.T)
}

// backends lists the configurations under test. crun 1.8.1 (Debian 12) needs the hugetlb
// controller out of the hybrid cgroup2 tree and an ociVersion it knows; see crunHost.
func backends() []backendCase {
	compat := filepath.Join(harness.RepoRoot(), "integration", "testdata", "crun-compat")
	return []backendCase{
		{name: "lxc", config: "backend = \"lxc\"\n"},
		{name: "crun-runc", config: "backend = \"crun\"\n[crun]\nbinary = \"runc\"\n"},
		{name: "crun-crun", config: fmt.Sprintf("backend = \"crun\"\n[crun]\nbinary = %q\n", compat), setup: crunHost},
	}
}

// start starts containerd whose lxcri shims read cfg as their host configuration.
func start(t *testing.T, b backendCase, opts ...harness.Option) *harness.Env {
	t.Helper()
	if b.setup != nil {
		b.setup(t)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(b.config), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("%s%d", nsPrefix, nsSeq.Add(1))
	return harness.Start(t, append([]harness.Option{harness.WithNamespace(ns)}, append(opts, harness.WithDaemonEnv("LXCRI_CONFIG="+cfg))...)...)
}

// nsPrefix names the containerd namespaces of this test binary, so that the suite's
// leftover check looks only at what this run made.
var (
	nsPrefix = fmt.Sprintf("lxcri-it%d-", os.Getpid())
	nsSeq    atomic.Int64
)

// crunHost makes this cgroup v1 hybrid host acceptable to crun 1.8.1, which refuses to run
// while the cgroup2 tree holds a controller: it mounts hugetlb as a v1 hierarchy for the
// test and unmounts it afterwards.
func crunHost(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	if err != nil || strings.TrimSpace(string(b)) == "" {
		return // pure v1 or pure v2: nothing to do
	}
	dir := "/sys/fs/cgroup/hugetlb"
	if _, err := os.Stat(filepath.Join(dir, "hugetlb.2MB.limit_in_bytes")); err == nil {
		return
	}

	// (A hugetlb hierarchy left alive by an earlier unmount is mounted again here, and
	// released for good by the cleanup.)
	if err := exec.Command("mount", "-o", "remount,rw", "/sys/fs/cgroup").Run(); err != nil {
		t.Logf("remount /sys/fs/cgroup rw: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("crun host setup: %v", err)
	}
	if out, err := exec.Command("mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", dir).CombinedOutput(); err != nil {
		t.Fatalf("crun host setup: mount hugetlb cgroup v1: %v: %s", err, out)
	}
	t.Cleanup(func() {
		// A hierarchy unmounted with cgroups left would stay alive, mounted nowhere, and
		// break loading any process's cgroup from /proc/PID/cgroup for the tests after.
		if err := harness.UnmountCgroupV1(dir, "hugetlb", 10*time.Second); err != nil {
			t.Errorf("crun host teardown: %v", err)
		}
	})
}
