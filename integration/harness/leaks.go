//go:build linux

package harness

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// ShimProcesses returns the pids of all running containerd-shim-lxcri-v2 processes on the
// host, whichever containerd started them. Use Env.ShimProcesses for one Env's shims.
func ShimProcesses() []int {
	var pids []int
	for _, p := range Procs() {
		if p.Name() == ShimBinary {
			pids = append(pids, p.Pid)
		}
	}
	return pids
}

// Proc is a process of the host as /proc shows it.
type Proc struct {
	Pid   int
	Argv0 string
	Args  []string // the command line after Argv0
	Exe   string   // the link /proc/PID/exe, "" when unreadable
}

// Name is the process's program name: the base of Argv0, else of its executable.
func (p Proc) Name() string {
	if p.Argv0 != "" {
		return filepath.Base(p.Argv0)
	}
	return filepath.Base(strings.TrimSuffix(p.Exe, " (deleted)"))
}

// HasArg tells whether an argument is a, or an option set to a (--opt=a).
func (p Proc) HasArg(a string) bool {
	for _, x := range p.Args {
		if x == a || strings.HasSuffix(x, "="+a) {
			return true
		}
	}
	return false
}

// Cmdline is the command line, its arguments joined by spaces.
func (p Proc) Cmdline() string {
	return strings.Join(append([]string{p.Argv0}, p.Args...), " ")
}

// Cgroup is the content of /proc/PID/cgroup: the process's cgroup in each hierarchy
// ("" once it is gone).
func (p Proc) Cgroup() string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.Pid), "cgroup"))
	return string(b)
}

// Procs lists the processes of the host but this one with their command lines (kernel
// threads and processes that vanish meanwhile are left out).
func Procs() []Proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		exe, _ := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		out = append(out, Proc{Pid: pid, Argv0: args[0], Args: args[1:], Exe: exe})
	}
	return out
}

// MountsUnder returns the mount points at or below dir, from /proc/self/mountinfo,
// deepest first (the order to unmount them in).
func MountsUnder(dir string) []string {
	dir = filepath.Clean(dir)
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		dir = r
	}
	var out []string
	for _, m := range mountinfoList() {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			out = append(out, m.point)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return strings.Count(out[i], "/") > strings.Count(out[j], "/")
	})
	return out
}

type mount struct {
	point     string
	fstype    string
	superOpts string
}

func mountinfoList() []mount {
	infos, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil
	}
	out := make([]mount, 0, len(infos))
	for _, m := range infos {
		out = append(out, mount{point: m.Mountpoint, fstype: m.FSType, superOpts: m.VFSOptions})
	}
	return out
}

// CgroupsNamed returns the cgroup folders, in every mounted cgroup v1 hierarchy and in the
// cgroup v2 tree (/sys/fs/cgroup/unified on a hybrid host, /sys/fs/cgroup on a pure v2
// host), whose name contains substr. A match's subfolders are not searched further.
func CgroupsNamed(substr string) []string {
	var roots []string
	seen := map[string]bool{}
	for _, m := range mountinfoList() {
		if m.fstype != "cgroup" && m.fstype != "cgroup2" {
			continue
		}
		p := m.point
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		if !seen[p] {
			seen[p] = true
			roots = append(roots, p)
		}
	}
	if len(roots) == 0 { // no mountinfo: fall back to the usual layout
		ents, _ := os.ReadDir("/sys/fs/cgroup")
		for _, e := range ents {
			if e.IsDir() {
				roots = append(roots, filepath.Join("/sys/fs/cgroup", e.Name()))
			}
		}
	}
	sort.Strings(roots)
	var out []string
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p == root {
					return err
				}
				return nil // vanished meanwhile
			}
			if !d.IsDir() || p == root {
				return nil
			}
			if strings.Contains(d.Name(), substr) {
				out = append(out, p)
				return fs.SkipDir
			}
			return nil
		})
	}
	return out
}
