//go:build linux

package shim_test

import (
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	cgroupsv2 "github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/integration/harness"
)

// TestCgroupLoadByPid: the cgroup of a task's pid, as containerd's client tests load it
// (cgroup1.Load(cgroup1.PidPath(pid)) on cgroup v1), shows the task's limits, before and
// after an Update (containerd's TestContainerUpdate).
//
// The lxc case runs again after the crun ones: on a hybrid cgroup host they mount hugetlb
// as a v1 hierarchy for crun 1.8.1, and a hierarchy unmounted with cgroups in it stays
// alive, mounted nowhere, where loading any process's cgroup fails.
func TestCgroupLoadByPid(t *testing.T) {
	// A hierarchy an older run left alive would fail every case: start from a sound host.
	if err := harness.ReleaseUnmountedCgroupV1(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	cases := backends()
	again := cases[0]
	again.name += "-after-crun"
	for _, b := range append(cases, again) {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			ctx := env.Context()
			limit := int64(32 * 1024 * 1024)
			_, task := newTask(t, env, "cgpid", cio.NullIO, oci.WithProcessArgs("sleep", "1000"), oci.WithMemoryLimit(uint64(limit)))
			if err := task.Start(ctx); err != nil {
				t.Fatal(err)
			}
			memLimit := func() int64 {
				t.Helper()
				if cgroups.Mode() == cgroups.Unified {
					p, err := cgroupsv2.PidGroupPath(int(task.Pid()))
					if err != nil {
						t.Fatal(err)
					}
					m, err := cgroupsv2.Load(p)
					if err != nil {
						t.Fatal(err)
					}
					st, err := m.Stat()
					if err != nil {
						t.Fatal(err)
					}
					return int64(st.Memory.UsageLimit)
				}
				cg, err := cgroup1.Load(cgroup1.PidPath(int(task.Pid())))
				if err != nil {
					t.Fatalf("cgroup1.Load(cgroup1.PidPath(%d)): %v", task.Pid(), err)
				}
				st, err := cg.Stat(cgroup1.IgnoreNotExist)
				if err != nil {
					t.Fatal(err)
				}
				return int64(st.Memory.Usage.Limit)
			}
			if got := memLimit(); got != limit {
				t.Errorf("memory limit %d, want %d", got, limit)
			}
			limit = 64 * 1024 * 1024
			if err := task.Update(ctx, client.WithResources(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}})); err != nil {
				t.Fatalf("update: %v", err)
			}
			if got := memLimit(); got != limit {
				t.Errorf("memory limit after update %d, want %d", got, limit)
			}
		})
	}
}
