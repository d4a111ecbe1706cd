package cgroups

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// v1 is a cgroup on a legacy or hybrid host: one directory per v1 hierarchy.
type v1 struct {
	// name is the cgroup's path inside the hierarchies, for error messages.
	name string
	cg   cgroup1.Cgroup
	// mem is the same cgroup restricted to the memory hierarchy, so OOM accounting reads
	// only memory files; nil when the cgroup has no memory hierarchy.
	mem cgroup1.Cgroup
}

var _ Cgroup = (*v1)(nil)

func loadV1ByPid(pid int) (*v1, error) {
	proc := fmt.Sprintf("/proc/%d/cgroup", pid)
	path := v1ProcPath(proc, "", cgroup1.PidPath(pid))
	name := fmt.Sprintf("of pid %d", pid)
	if p, err := path(cgroup1.Memory); err == nil {
		name = fmt.Sprintf("%s (pid %d)", p, pid)
	}
	return loadV1(name, path)
}

func loadV1Path(p ociPath) (*v1, error) {
	if p.nested {
		return loadV1(p.raw, v1ProcPath("/proc/self/cgroup", p.clean, cgroup1.NestedPath(p.clean)))
	}
	return loadV1(p.raw, cgroup1.StaticPath(p.clean))
}

// loadV1 loads the cgroup at path in every mounted v1 hierarchy where it exists.
func loadV1(name string, path cgroup1.Path) (*v1, error) {
	cg, err := cgroup1.Load(path)
	if err != nil {
		return nil, wrapErr(name, "load", err)
	}
	c := &v1{name: name, cg: cg}
	mem, err := cgroup1.Load(path, cgroup1.WithHierarchy(memoryHierarchy))
	switch {
	case err == nil:
		c.mem = mem
	case errors.Is(err, cgroup1.ErrCgroupDeleted), errors.Is(err, cgroup1.ErrMemoryNotSupported):
		// no memory hierarchy, or the cgroup is not in it: OOM reporting is unavailable.
	default:
		return nil, wrapErr(name, "load memory", err)
	}
	return c, nil
}

// memoryHierarchy is the host's default v1 hierarchy reduced to the memory controller.
func memoryHierarchy() ([]cgroup1.Subsystem, error) {
	all, err := cgroup1.Default()
	if err != nil {
		return nil, err
	}
	for _, s := range all {
		if s.Name() == cgroup1.Memory {
			return []cgroup1.Subsystem{s}, nil
		}
	}
	return nil, cgroup1.ErrMemoryNotSupported
}

// gone tells whether the cgroup was removed from its hierarchies.
func (c *v1) gone() bool {
	return c.cg.State() == cgroup1.Deleted
}

// fail wraps err, turning any error of a removed cgroup into NotFound.
func (c *v1) fail(op string, err error) error {
	if c.gone() {
		return goneErr(c.name, op)
	}
	return wrapErr(c.name, op, err)
}

func (c *v1) Stats(ctx context.Context) (typeurl.Any, error) {
	// Missing files are skipped as containerd's runc shim does (kmem, memsw depend on the
	// kernel's configuration); a cgroup that is gone is caught just after.
	m, err := c.cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return nil, c.fail("stats", err)
	}
	if c.gone() {
		return nil, goneErr(c.name, "stats")
	}
	a, err := typeurl.MarshalAny(m)
	if err != nil {
		return nil, wrapErr(c.name, "marshal stats", err)
	}
	return a, nil
}

func (c *v1) Update(ctx context.Context, res *specs.LinuxResources) error {
	if res == nil {
		return fmt.Errorf("cgroup %s: update: no resources: %w", c.name, errdefs.ErrInvalidArgument)
	}
	if err := c.cg.Update(res); err != nil {
		return c.fail("update", err)
	}
	return nil
}

// pidsHierarchies are the hierarchies Pids reads, best first: any of them holds every
// process of a container.
var pidsHierarchies = []cgroup1.Name{cgroup1.Pids, cgroup1.Freezer, cgroup1.Memory, cgroup1.Cpu, cgroup1.Devices}

func (c *v1) Pids(ctx context.Context) ([]int, error) {
	i := slices.IndexFunc(pidsHierarchies, c.has)
	if i < 0 {
		return nil, fmt.Errorf("cgroup %s: pids: no hierarchy lists processes: %w", c.name, errdefs.ErrNotImplemented)
	}
	subsystem := pidsHierarchies[i]
	procs, err := c.cg.Processes(subsystem, true)
	if err != nil {
		return nil, c.fail("pids", err)
	}
	pids := make([]int, 0, len(procs))
	for _, p := range procs {
		pids = append(pids, p.Pid)
	}
	slices.Sort(pids)
	return slices.Compact(pids), nil
}

func (c *v1) Freeze(ctx context.Context) error {
	if err := c.cg.Freeze(); err != nil {
		return c.fail("freeze", err)
	}
	return nil
}

func (c *v1) Thaw(ctx context.Context) error {
	if err := c.cg.Thaw(); err != nil {
		return c.fail("thaw", err)
	}
	return nil
}

// frozen tells whether the freezer hierarchy holds the cgroup frozen.
func (c *v1) frozen() (bool, error) {
	switch c.cg.State() {
	case cgroup1.Frozen, cgroup1.Freezing:
		return true, nil
	case cgroup1.Deleted:
		return false, goneErr(c.name, "freezer state")
	case cgroup1.Unknown:
		return false, fmt.Errorf("cgroup %s: freezer state unknown: %w", c.name, errdefs.ErrUnknown)
	}
	return false, nil
}

// has tells whether the cgroup is in the hierarchy of controller name.
func (c *v1) has(name cgroup1.Name) bool {
	return slices.ContainsFunc(c.cg.Subsystems(), func(s cgroup1.Subsystem) bool { return s.Name() == name })
}

func (c *v1) KillAll(ctx context.Context, sig syscall.Signal) error {
	if !c.has(cgroup1.Freezer) {
		return signalPids(ctx, c, sig)
	}
	return signalFrozen(ctx, c, sig)
}

func (c *v1) OOMKilled() (uint64, error) {
	if c.mem == nil {
		return 0, fmt.Errorf("cgroup %s: oom_kill: no memory cgroup: %w", c.name, errdefs.ErrNotImplemented)
	}
	// Only the memory hierarchy is read; files the kernel lacks (memsw without swap
	// accounting) are skipped, memory.oom_control itself is required.
	m, err := c.mem.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return 0, c.fail("oom_kill", err)
	}
	if m.MemoryOomControl == nil {
		if c.mem.State() == cgroup1.Deleted {
			return 0, goneErr(c.name, "oom_kill")
		}
		return 0, fmt.Errorf("cgroup %s: oom_kill: memory.oom_control unreadable: %w", c.name, errdefs.ErrNotImplemented)
	}
	return m.MemoryOomControl.OomKill, nil
}
