package harness

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A cgroup v1 hierarchy that still has cgroups when it is unmounted stays alive, mounted
// nowhere: every process then lists it in /proc/PID/cgroup, and a client that loads a
// process's cgroup from that file (containerd's cgroup1.Load(cgroup1.PidPath(pid)), as its
// client tests do) fails with "cannot find cgroup mount destination", whatever runtime
// made the process. Tests that mount a v1 hierarchy (crun 1.8.1 needs hugetlb out of the
// hybrid cgroup2 tree) release it with UnmountCgroupV1, which leaves none behind.

// UnmountCgroupV1 removes every cgroup below the v1 hierarchy of controller mounted at dir
// (deepest first; they must be empty), waits until the kernel has freed them, unmounts dir
// and waits until the hierarchy is gone. The kernel destroys an unmounted hierarchy only
// if it has no cgroup left, dying ones included, at the moment of the unmount.
func UnmountCgroupV1(dir, controller string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var dirs []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != dir {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	var busy []string
	for _, d := range dirs {
		if err := syscall.Rmdir(d); err != nil && err != syscall.ENOENT {
			busy = append(busy, fmt.Sprintf("%s (%v)", d, err))
		}
	}
	if len(busy) > 0 {
		return fmt.Errorf("cgroups left in the %s hierarchy at %s: %s", controller, dir, strings.Join(busy, ", "))
	}
	for {
		n, ok := cgroupV1Count(controller)
		if !ok || n <= 1 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %s hierarchy at %s still counts %d cgroups after removing them all", controller, dir, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("umount %s: %v: %s", dir, err, out)
	}
	os.Remove(dir)
	for {
		if _, ok := cgroupV1Count(controller); !ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %s hierarchy outlived its unmount from %s (it is listed in /proc/self/cgroup, mounted nowhere)", controller, dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cgroupV1Count is the number of cgroups of controller's v1 hierarchy (/proc/cgroups);
// ok is false when controller is in no v1 hierarchy.
func cgroupV1Count(controller string) (n int, ok bool) {
	f, err := os.Open("/proc/cgroups")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fl := strings.Fields(s.Text())
		if len(fl) == 4 && fl[0] == controller {
			if fl[1] == "0" {
				return 0, false
			}
			n, _ := strconv.Atoi(fl[2])
			return n, true
		}
	}
	return 0, false
}

// UnmountedCgroupV1 lists the v1 controllers this process is in (/proc/self/cgroup) whose
// hierarchy is mounted nowhere in its mount namespace.
func UnmountedCgroupV1() []string {
	mounted := map[string]bool{}
	for _, m := range mountinfoList() {
		if m.fstype == "cgroup" {
			for _, o := range strings.Split(m.superOpts, ",") {
				mounted[o] = true
			}
		}
	}
	var out []string
	cg, _ := os.ReadFile("/proc/self/cgroup")
	for _, l := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 || parts[0] == "0" || parts[1] == "" {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if !mounted[c] {
				out = append(out, c)
			}
		}
	}
	return out
}

// ReleaseUnmountedCgroupV1 destroys the v1 hierarchies UnmountedCgroupV1 lists: each is
// mounted again (which attaches the live hierarchy) in a temporary folder and released
// with UnmountCgroupV1.
func ReleaseUnmountedCgroupV1(timeout time.Duration) error {
	for _, c := range UnmountedCgroupV1() {
		if strings.HasPrefix(c, "name=") {
			continue // a named hierarchy has no controller to give back
		}
		dir, err := os.MkdirTemp("", "lxcri-cgroup-"+c+"-")
		if err != nil {
			return err
		}
		if out, err := exec.Command("mount", "-t", "cgroup", "-o", c, "cgroup", dir).CombinedOutput(); err != nil {
			os.Remove(dir)
			return fmt.Errorf("mount the %s hierarchy: %v: %s", c, err, out)
		}
		if err := UnmountCgroupV1(dir, c, timeout); err != nil {
			return err
		}
	}
	return nil
}
