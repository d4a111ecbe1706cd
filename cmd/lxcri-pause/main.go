// Command lxcri-pause is the init of a proxmox-lxc CT: it holds the CT's PID 1 while the
// shim runs the container's processes in the CT through the node's LXC (as `pct exec`
// does), which is how they get the shim's stdio and report their exit status. It reaps
// orphans and exits on SIGTERM, SIGINT or SIGPWR, so PVE's shutdown stops the CT.
//
// It is built static (CGO_ENABLED=0) and copied into each CT's template.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGPWR, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
