package shim

import (
	"fmt"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
)

// shimCgroup is the cgroup containerd asks the shim process to run in: ShimCgroup of
// runc's runtime options (a runtime handler's `options` table sets it), "" for none.
func shimCgroup(params *bootapi.BootstrapParams) (string, error) {
	var o options.Options
	found, err := params.FindExtension(&o)
	if err != nil {
		return "", fmt.Errorf("runtime options: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if !found {
		return "", nil
	}
	return o.ShimCgroup, nil
}

// joinCgroup moves process pid into the existing cgroup path (from the root of the
// hierarchy), on cgroup v2 or on every v1 hierarchy that has it, as containerd's runc
// shim does with ShimCgroup.
func joinCgroup(path string, pid int) error {
	if cgroups.Mode() == cgroups.Unified {
		cg, err := cgroup2.Load(path)
		if err != nil {
			return fmt.Errorf("shim cgroup %s: %w", path, err)
		}
		if err := cg.AddProc(uint64(pid)); err != nil {
			return fmt.Errorf("join shim cgroup %s: %w", path, err)
		}
		return nil
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(path))
	if err != nil {
		return fmt.Errorf("shim cgroup %s: %v: %w", path, err, errdefs.ErrFailedPrecondition)
	}
	if err := cg.AddProc(uint64(pid)); err != nil {
		return fmt.Errorf("join shim cgroup %s: %w", path, err)
	}
	return nil
}
