//go:build linux

package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lxcri/lxcri/integration/harness"
)

// Backend is one runtime configuration under measurement.
type Backend struct {
	// Key is the short name used by -backends and in container ids.
	Key string
	// Name is the label in the tables.
	Name string
	// Runtime is the containerd runtime type.
	Runtime string
	// LXCRI is the lxcri configuration (TOML, without state_dir) the shim gets through the
	// runtime options' config_path; "" for a runtime that is not lxcri.
	LXCRI string
	// GroupAnnotation puts containers into one shim process.
	GroupAnnotation string
	// NeedsCrunHost: crun 1.8.1 needs hugetlb out of the hybrid cgroup2 tree.
	NeedsCrunHost bool
	// Baseline marks the runtime every ratio is taken against.
	Baseline bool
	// Optional: a failed probe makes the backend unavailable instead of failing the run
	// when the shim says the backend is not built in.
	Optional bool

	// Unavailable says why the backend was not measured ("" when it was).
	Unavailable string

	configPath string
}

// Backend keys.
const (
	RuncShim = "runc-shim"
	CrunRunc = "crun-runc"
	CrunCrun = "crun-crun"
	LXC      = "lxc"
)

// DefaultBackends returns containerd's runc shim (the baseline) and every lxcri backend
// configuration: the crun backend driving runc, the crun backend driving crun, and the
// lxc backend (measured only if the shim has it built in).
func DefaultBackends() []*Backend {
	compat := filepath.Join(harness.RepoRoot(), "integration", "testdata", "crun-compat")
	return []*Backend{
		{
			Key: RuncShim, Name: "runc shim (io.containerd.runc.v2)", Runtime: harness.RuncRuntimeType,
			GroupAnnotation: "io.containerd.runc.v2.group", Baseline: true,
		},
		{
			Key: CrunRunc, Name: "lxcri crun backend, runc", Runtime: harness.RuntimeType,
			LXCRI:           "backend = \"crun\"\n[crun]\nbinary = \"runc\"\n",
			GroupAnnotation: "io.containerd.lxcri.v2.group",
		},
		{
			Key: CrunCrun, Name: "lxcri crun backend, crun", Runtime: harness.RuntimeType,
			LXCRI:           fmt.Sprintf("backend = \"crun\"\n[crun]\nbinary = %q\n", compat),
			GroupAnnotation: "io.containerd.lxcri.v2.group", NeedsCrunHost: true,
		},
		{
			Key: LXC, Name: "lxcri lxc backend", Runtime: harness.RuntimeType,
			LXCRI:           "backend = \"lxc\"\n",
			GroupAnnotation: "io.containerd.lxcri.v2.group", Optional: true,
		},
	}
}

// notBuiltIn tells whether a probe failed because the shim does not have the backend.
func notBuiltIn(err error) bool {
	// containerd retries a create that failed with NotImplemented on the task API v2, which
	// the lxcri shim does not serve, and reports that error.
	return err != nil && (strings.Contains(err.Error(), "is not available in this build") ||
		strings.Contains(err.Error(), "service containerd.task.v2.Task"))
}

// crunHost makes this cgroup v1 hybrid host acceptable to crun 1.8.1 (as crunHost of
// integration/shim does): while the cgroup2 tree holds a controller crun refuses to run,
// so hugetlb is mounted as a v1 hierarchy around the crun samples (ensure) and unmounted
// around the others' (release). A mount made by someone else is left alone.
type crunHost struct {
	mu      sync.Mutex
	mounted bool // by us
	used    bool // mounted by us at least once
}

const hugetlbDir = "/sys/fs/cgroup/hugetlb"

func crunHostNeeded() bool {
	b, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	return err == nil && strings.TrimSpace(string(b)) != ""
}

func (h *crunHost) ensure() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !crunHostNeeded() {
		return nil
	}
	if _, err := os.Stat(filepath.Join(hugetlbDir, "hugetlb.2MB.limit_in_bytes")); err == nil {
		return nil
	}
	_ = exec.Command("mount", "-o", "remount,rw", "/sys/fs/cgroup").Run()
	if err := os.MkdirAll(hugetlbDir, 0o755); err != nil {
		return fmt.Errorf("crun host setup: %w", err)
	}
	if out, err := exec.Command("mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", hugetlbDir).CombinedOutput(); err != nil {
		return fmt.Errorf("crun host setup: mount hugetlb cgroup v1: %v: %s", err, out)
	}
	h.mounted, h.used = true, true
	return nil
}

// release unmounts hugetlb if we mounted it, so that the other runtimes run on the host as
// it is: with hugetlb mounted as a v1 hierarchy containerd's runc shim cannot load a
// container's cgroup ("cannot find cgroup mount destination") and skips its OOM watch, and
// runc makes a hugetlb cgroup per container. The hierarchy's cgroups go first: one left
// would keep it alive, mounted nowhere, which breaks the same cgroup loading for everyone.
func (h *crunHost) release() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.mounted {
		return nil
	}
	h.mounted = false
	return harness.UnmountCgroupV1(hugetlbDir, "hugetlb", 10*time.Second)
}
