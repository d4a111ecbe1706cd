//go:build linux

package conformance

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
)

// containerd's client suite runs its daemon on fixed folders, in the namespace "testing",
// with cgroups /testing/<test> (or testing-<test>). When the suite binary dies (a timeout
// panics it) its daemon, shims and containers stay: clientLeftovers removes them, so that
// nothing outlives the run (a surviving daemon also keeps every file descriptor the run
// was started with, locks included).
const (
	clientRoot    = "/var/lib/containerd-test"
	clientState   = "/run/containerd-test"
	clientAddress = clientState + "/containerd.sock"
	clientNS      = "testing"
)

// clientLeftovers kills what containerd's client suite left running, unmounts and removes
// its folders and cgroups. It returns what it found, for the log ("" when nothing).
func clientLeftovers(pgid int) (string, error) {
	var found []string
	var errs []error
	// The daemon stays in the suite's process group; shims start their own groups and
	// name the daemon's address on their command line.
	if pgid > 0 {
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err == nil {
			found = append(found, "the suite's process group")
		}
	}
	shims := processesWith("-address", clientAddress)
	for _, pid := range shims {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if len(shims) > 0 {
		found = append(found, fmt.Sprintf("%d shims", len(shims)))
	}
	if n := killCgroups(clientNS); n > 0 {
		found = append(found, fmt.Sprintf("%d container processes", n))
	}
	// runc keeps its state of the namespace's containers beside containerd's /run folder.
	if ids, err := filepath.Glob("/run/containerd/runc/" + clientNS + "/*"); err == nil && len(ids) > 0 {
		for _, d := range ids {
			_ = exec.Command("runc", "--root", filepath.Dir(d), "delete", "-f", filepath.Base(d)).Run()
		}
		found = append(found, fmt.Sprintf("%d runc containers", len(ids)))
	}
	for _, dir := range []string{clientState, clientRoot} {
		mounts, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
		sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
		for _, m := range mounts {
			if err := syscall.Unmount(m.Mountpoint, syscall.MNT_DETACH); err != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w", m.Mountpoint, err))
			}
		}
		if len(mounts) > 0 {
			found = append(found, fmt.Sprintf("%d mounts under %s", len(mounts), dir))
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeCgroups(clientNS); err != nil {
		errs = append(errs, err)
	}
	return strings.Join(found, ", "), errors.Join(errs...)
}

// processesWith returns the pids whose command line holds flag followed by value.
func processesWith(flag, value string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if args[i] == flag && args[i+1] == value {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// nsCgroups lists the cgroup folders of namespace ns in every hierarchy: <ns> and <ns>-*
// at the top of each (containerd's default cgroup paths), deepest first.
func nsCgroups(ns string) []string {
	var dirs []string
	tops, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns)
	more, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns + "-*")
	tops = append(tops, more...)
	// cgroup v2 alone: the namespace folders sit right under /sys/fs/cgroup
	v2, _ := filepath.Glob("/sys/fs/cgroup/" + ns)
	tops = append(tops, v2...)
	for _, top := range tops {
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	return dirs
}

// killCgroups SIGKILLs every process in the namespace's cgroups and returns how many.
func killCgroups(ns string) int {
	seen := map[int]bool{}
	for _, d := range nsCgroups(ns) {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
				seen[pid] = true
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	return len(seen)
}

// removeCgroups removes the namespace's cgroups, giving killed processes a moment to go.
func removeCgroups(ns string) error {
	var last error
	for i := 0; i < 50; i++ {
		last = nil
		for _, d := range nsCgroups(ns) {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				last = fmt.Errorf("rmdir %s: %w", d, err)
			}
		}
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}
