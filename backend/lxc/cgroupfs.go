package lxc

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupMounts lists the mount points of the roots of every cgroup hierarchy (v1
// controllers, named v1 hierarchies, the v2 hierarchy) of this process's mount namespace.
func cgroupMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []string
	seen := map[string]bool{}
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		// id parent major:minor root mountpoint opts... - fstype source superopts
		fields := strings.Fields(s.Text())
		sep := -1
		for i, fl := range fields {
			if fl == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		fstype := fields[sep+1]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		if fields[3] != "/" {
			continue // a bind of a sub-cgroup, not a hierarchy root
		}
		mp := unescapeMountinfo(fields[4])
		if !seen[mp] {
			seen[mp] = true
			mounts = append(mounts, mp)
		}
	}
	return mounts, s.Err()
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
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
