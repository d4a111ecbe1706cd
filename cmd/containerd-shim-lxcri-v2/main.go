// Command containerd-shim-lxcri-v2 is lxcri's containerd runtime v2 shim
// (runtime type io.containerd.lxcri.v2).
package main

import (
	"context"

	"github.com/containerd/containerd/v2/pkg/shim"

	"github.com/lxcri/lxcri/backend/crun"
	"github.com/lxcri/lxcri/backend/lxc"
	"github.com/lxcri/lxcri/backend/proxmoxlxc"
	"github.com/lxcri/lxcri/backend/proxmoxvm"
	lxcshim "github.com/lxcri/lxcri/shim"
)

func main() {
	backends := lxcshim.Registry{
		crun.Name:       crun.New,
		lxc.Name:        lxc.New,
		proxmoxlxc.Name: proxmoxlxc.New,
		proxmoxvm.Name:  proxmoxvm.New,
	}
	lxcshim.RegisterTaskPlugin(backends)
	lxcshim.RegisterDebugPlugin()
	// No catch-all reaper: the task service waits for each process by pid (see
	// runtime.ExitWatcher), so that os/exec in libraries keeps working.
	shim.RunShim(context.Background(), lxcshim.NewManager(backends), func(c *shim.Config) { c.NoReaper = true })
}
