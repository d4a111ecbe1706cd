package cgroups

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultMountpoint is where a unified host mounts cgroup2.
const defaultMountpoint = "/sys/fs/cgroup"

// v2 is a cgroup of the unified hierarchy (Proxmox VE hosts).
type v2 struct {
	// group is the cgroup's path under the mountpoint, as in /proc/PID/cgroup.
	group string
	// dir is mountpoint+group, checked to tell a removed cgroup from an empty read.
	dir string
	m   *cgroup2.Manager
}

var _ Cgroup = (*v2)(nil)

func loadV2ByPid(pid int) (*v2, error) {
	group, err := cgroup2.PidGroupPath(pid)
	if err != nil {
		return nil, wrapErr(fmt.Sprintf("of pid %d", pid), "load", err)
	}
	return loadV2(defaultMountpoint, group)
}

func loadV2Path(p ociPath) (*v2, error) {
	if !p.nested {
		return loadV2(defaultMountpoint, p.clean)
	}
	group, err := cgroup2.NestedGroupPath(p.clean)
	if err != nil {
		return nil, wrapErr(p.raw, "load", err)
	}
	return loadV2(defaultMountpoint, group)
}

// loadV2 loads group under mountpoint; tests point mountpoint at a fixture tree.
func loadV2(mountpoint, group string) (*v2, error) {
	m, err := cgroup2.Load(group, cgroup2.WithMountpoint(mountpoint))
	if err != nil {
		return nil, wrapErr(group, "load", err)
	}
	c := &v2{group: group, dir: filepath.Join(mountpoint, group), m: m}
	if c.gone() {
		return nil, goneErr(group, "load")
	}
	return c, nil
}

// gone tells whether the cgroup's directory was removed.
func (c *v2) gone() bool {
	_, err := os.Stat(c.dir)
	return os.IsNotExist(err)
}

// fail wraps err, turning any error of a removed cgroup into NotFound.
func (c *v2) fail(op string, err error) error {
	if c.gone() {
		return goneErr(c.group, op)
	}
	return wrapErr(c.group, op, err)
}

func (c *v2) Stats(ctx context.Context) (typeurl.Any, error) {
	m, err := c.m.Stat()
	if err != nil {
		return nil, c.fail("stats", err)
	}
	// The library reads a missing file as zero; zeros from a removed cgroup are not stats.
	if c.gone() {
		return nil, goneErr(c.group, "stats")
	}
	a, err := typeurl.MarshalAny(m)
	if err != nil {
		return nil, wrapErr(c.group, "marshal stats", err)
	}
	return a, nil
}

func (c *v2) Update(ctx context.Context, res *specs.LinuxResources) error {
	if res == nil {
		return fmt.Errorf("cgroup %s: update: no resources: %w", c.group, errdefs.ErrInvalidArgument)
	}
	if c.gone() {
		return goneErr(c.group, "update")
	}
	if err := c.m.Update(cgroup2.ToResources(res)); err != nil {
		return c.fail("update", err)
	}
	return nil
}

func (c *v2) Pids(ctx context.Context) ([]int, error) {
	procs, err := c.m.Procs(true)
	if err != nil {
		return nil, c.fail("pids", err)
	}
	pids := make([]int, 0, len(procs))
	for _, p := range procs {
		pids = append(pids, int(p))
	}
	slices.Sort(pids)
	return slices.Compact(pids), nil
}

func (c *v2) Freeze(ctx context.Context) error {
	if err := c.m.Freeze(); err != nil {
		return c.fail("freeze", err)
	}
	return nil
}

func (c *v2) Thaw(ctx context.Context) error {
	if err := c.m.Thaw(); err != nil {
		return c.fail("thaw", err)
	}
	return nil
}

// frozen reads cgroup.freeze; the library has no getter for it.
func (c *v2) frozen() (bool, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "cgroup.freeze"))
	if err != nil {
		return false, c.fail("freezer state", err)
	}
	return string(bytes.TrimSpace(b)) == "1", nil
}

func (c *v2) KillAll(ctx context.Context, sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		// cgroup.kill (Linux 5.14+) kills the whole subtree atomically, frozen or not;
		// the library falls back to freeze, signal, thaw on older kernels.
		if c.gone() {
			return goneErr(c.group, "kill")
		}
		if err := c.m.Kill(); err != nil {
			return c.fail("kill", err)
		}
		return nil
	}
	return signalFrozen(ctx, c, sig)
}

func (c *v2) OOMKilled() (uint64, error) {
	m, err := c.m.StatFiltered(cgroup2.StatMemoryEvents)
	if err != nil {
		return 0, c.fail("oom_kill", err)
	}
	if m.MemoryEvents == nil {
		if c.gone() {
			return 0, goneErr(c.group, "oom_kill")
		}
		return 0, fmt.Errorf("cgroup %s: oom_kill: no memory.events (memory controller not enabled): %w",
			c.group, errdefs.ErrNotImplemented)
	}
	return m.MemoryEvents.OomKill, nil
}
