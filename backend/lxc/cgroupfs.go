package lxc

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
)

// cgroupMounts lists the mount points of the roots of every cgroup hierarchy (v1
// controllers, named v1 hierarchies, the v2 hierarchy) of this process's mount namespace.
func cgroupMounts() ([]string, error) {
	infos, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		// A bind of a sub-cgroup is not a hierarchy root.
		return (m.FSType != "cgroup" && m.FSType != "cgroup2") || m.Root != "/", false
	})
	if err != nil {
		return nil, err
	}
	var mounts []string
	seen := map[string]bool{}
	for _, m := range infos {
		if !seen[m.Mountpoint] {
			seen[m.Mountpoint] = true
			mounts = append(mounts, m.Mountpoint)
		}
	}
	return mounts, nil
}

// cgroupLayout finds out where the host's controllers are.
func cgroupLayout() CgroupLayout {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return CgroupLayout{Unified: true}
	}
	b, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	if err != nil {
		return CgroupLayout{}
	}
	return CgroupLayout{UnifiedControllers: strings.Fields(string(b))}
}

// removeCgroupTree removes cgroup rel (relative to every hierarchy root) and the
// cgroups under it, deepest first. Cgroups that still hold processes stay (EBUSY) and are
// reported.
func removeCgroupTree(rel string) error {
	if rel == "" || strings.Contains(rel, "..") {
		return nil
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		root := filepath.Join(m, rel)
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := rmdirRetry(dirs[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeCgroupIfEmpty removes cgroup rel in every hierarchy if it has no children and no
// processes; anything else (busy, not there) is fine.
func removeCgroupIfEmpty(rel string) {
	mounts, err := cgroupMounts()
	if err != nil {
		return
	}
	for _, m := range mounts {
		syscall.Rmdir(filepath.Join(m, rel))
	}
}

// rmdirRetry removes a cgroup directory; a cgroup whose last process just exited may be
// busy for a moment.
func rmdirRetry(p string) error {
	var err error
	for i := 0; i < 50; i++ {
		err = syscall.Rmdir(p)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &os.PathError{Op: "rmdir", Path: p, Err: err}
}

// cgroupProcs lists the processes of cgroup rel in any hierarchy (for killing a
// monitor that lost its shim).
func cgroupProcs(rel string) []int {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil
	}
	seen := map[int]bool{}
	var pids []int
	for _, m := range mounts {
		root := filepath.Join(m, rel)
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, l := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(l); err == nil && !seen[pid] {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}
