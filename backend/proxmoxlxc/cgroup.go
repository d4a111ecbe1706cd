package proxmoxlxc

import (
	"fmt"
	"os"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
)

// joinCgroups moves pid (a helper about to attach a process) into the CT's cgroups of the
// v1 hierarchies, which are the ones the CT's init is in. On a cgroup v2 host there are
// none: liblxc's attach moves the process itself.
func (c *container) joinCgroups(pid int) error {
	if cgroups.Mode() == cgroups.Unified {
		return nil
	}
	c.mu.Lock()
	init := c.ctInit
	c.mu.Unlock()
	if init == 0 {
		return fmt.Errorf("CT %d is not running: %w", c.vmid, errdefs.ErrFailedPrecondition)
	}
	cg, err := cgroup1.Load(cgroup1.PidPath(init))
	if err != nil {
		return fmt.Errorf("CT %d's cgroup: %w", c.vmid, err)
	}
	if err := cg.AddProc(uint64(pid)); err != nil {
		return fmt.Errorf("enter CT %d's cgroup: %w", c.vmid, err)
	}
	return nil
}

// leaveCgroups moves a helper whose process runs back into the shim's own v1 cgroups, so
// that the CT's processes are its own, as Pids lists them.
func (c *container) leaveCgroups(pid int) {
	if cgroups.Mode() == cgroups.Unified {
		return
	}
	cg, err := cgroup1.Load(cgroup1.PidPath(os.Getpid()))
	if err == nil {
		err = cg.AddProc(uint64(pid))
	}
	if err != nil {
		log.L.WithError(err).WithField("vmid", c.vmid).Debug("proxmox-lxc: move the attach helper back to the shim's cgroup")
	}
}
