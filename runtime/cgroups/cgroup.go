// Package cgroups reads and changes a container's cgroup for every lxcri backend (lxc, crun),
// so that stats, updates, pause, kill-all and OOM reporting behave the same whichever
// backend made the container, and match what containerd's runc shim does.
//
// It is a thin layer over github.com/containerd/cgroups/v3: cgroup v1 (legacy and hybrid
// hosts, such as the test machines) goes through cgroup1, cgroup v2 (Proxmox VE hosts) through
// cgroup2. Errors carry errdefs sentinels (NotFound once the cgroup is gone) and name the
// cgroup's path.
package cgroups

import (
	"context"
	"fmt"
	"syscall"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Cgroup is one container's cgroup, whatever the host's cgroup version, so a backend
// implements Stats, Update, Pause, Resume, Pids, KillAll and OOM reporting once.
// Implementations are safe for concurrent use.
type Cgroup interface {
	// Stats returns the cgroup's metrics as containerd's runc shim does: a *v1.Metrics
	// (cgroup1/stats) or *v2.Metrics (cgroup2/stats) marshalled with typeurl.MarshalAny,
	// which is what `ctr task metrics`, crictl and the kubelet decode.
	Stats(ctx context.Context) (typeurl.Any, error)
	// Update applies new resource limits (OCI LinuxResources) to the cgroup.
	Update(ctx context.Context, res *specs.LinuxResources) error
	// Pids lists the host pids of every process in the cgroup and its descendants.
	Pids(ctx context.Context) ([]int, error)
	// Freeze stops every process of the cgroup (container pause).
	Freeze(ctx context.Context) error
	// Thaw resumes a frozen cgroup (container resume).
	Thaw(ctx context.Context) error
	// KillAll sends sig to every process of the cgroup. The cgroup is frozen meanwhile so no
	// process escapes by forking; a cgroup that was frozen before stays frozen, except after
	// SIGKILL on v1, where frozen processes cannot die until thawed. SIGKILL on v2 writes
	// cgroup.kill, which kills the subtree at once, frozen or not.
	KillAll(ctx context.Context, sig syscall.Signal) error
	// OOMEvents delivers one value per OOM kill in the cgroup, counted from the cgroup's
	// creation (kills that happened before the call are delivered first), so over the
	// channel's life it delivers OOMKilled() values. The channel is closed when ctx ends or
	// the cgroup is gone (on cgroup v2: once it has no process left).
	OOMEvents(ctx context.Context) (<-chan struct{}, error)
	// OOMKilled is the kernel's oom_kill counter of the cgroup. A caller that has received
	// fewer values from OOMEvents than this can wait for the rest before publishing the
	// init's exit, so the OOM event is not lost or reported after the exit.
	OOMKilled() (uint64, error)
}

// LoadByPid loads the cgroup that process pid is in, which is how a backend finds its
// container's cgroup whatever cgroup driver (cgroupfs, systemd, LXC's own) placed it.
func LoadByPid(pid int) (Cgroup, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("cgroup of pid %d: %w", pid, errdefs.ErrInvalidArgument)
	}
	switch mode := cgroups.Mode(); mode {
	case cgroups.Unified:
		return loadV2ByPid(pid)
	case cgroups.Legacy, cgroups.Hybrid:
		return loadV1ByPid(pid)
	default:
		return nil, fmt.Errorf("cgroup of pid %d: no cgroup hierarchy mounted: %w", pid, errdefs.ErrNotImplemented)
	}
}

// Load loads the cgroup named by an OCI cgroupsPath (linux.cgroupsPath of the spec), so a
// backend can reach the cgroup before the container's init runs. An absolute path is taken
// from the root of the cgroup hierarchy; a relative one is nested under the calling process's
// own cgroup, as runc does. The systemd form "slice:prefix:name" is not supported (use
// LoadByPid). The cgroup must exist.
func Load(path string) (Cgroup, error) {
	p, err := parsePath(path)
	if err != nil {
		return nil, err
	}
	switch mode := cgroups.Mode(); mode {
	case cgroups.Unified:
		return loadV2Path(p)
	case cgroups.Legacy, cgroups.Hybrid:
		return loadV1Path(p)
	default:
		return nil, fmt.Errorf("cgroup %s: no cgroup hierarchy mounted: %w", path, errdefs.ErrNotImplemented)
	}
}
