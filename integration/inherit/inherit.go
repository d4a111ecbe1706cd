// Package inherit keeps the descriptors a test process inherited out of the daemons it
// starts.
package inherit

import (
	"os"
	"strconv"
	"syscall"
)

// CloseOnExec marks every descriptor of this process beyond stdio close-on-exec; call it
// before starting a daemon (containerd, zfs-fuse, a registry). Go opens its own files
// close-on-exec but leaves the ones it inherited open in every child, and a daemon may
// outlive the test (zfs-fuse stays while another test's pool uses it): a lock held on an
// inherited descriptor, as `flock FILE go test ...` holds one, would stay held by it.
func CloseOnExec() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}
