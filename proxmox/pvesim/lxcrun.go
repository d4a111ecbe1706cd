package pvesim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lxc/go-lxc"
	"github.com/moby/sys/mountinfo"
)

// This file runs a CT as a real LXC container, configured from its PVE config the way
// pve-container's update_lxc_config does: rootfs from the CT's disk, lxc.init.cmd from
// entrypoint, env as lxc.environment, memory/swap/cores/cpulimit/cpuunits as cgroup
// limits, the hostname, an id map for unprivileged CTs, the raw lxc.* keys the OCI image
// gave. Networks are recorded in the PVE config but the container gets none
// (lxc.net.0.type = empty): there is no bridge to plug it into.

const (
	unprivShift = 100000 // PVE's default id map: u/g 0 100000 65536
	unprivRange = 65536
)

// lxcValue is the one check every value passes before it reaches an LXC config line:
// a line break or NUL would start a new key.
func lxcValue(key, v string) (string, error) {
	if strings.ContainsAny(v, "\n\r\x00") {
		return "", fmt.Errorf("value of '%s' contains a line break or NUL and cannot go into the LXC config", key)
	}
	return v, nil
}

func cgroupV2() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}

func memswAvailable() bool {
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return err == nil
}

// cgroupDir is the CT's cgroup below each hierarchy root; monitorDir its monitor's.
func (s *Server) cgroupDir(vmid int) string {
	return fmt.Sprintf("%s/lxc/%d", s.cgroupPrefix, vmid)
}

func (s *Server) monitorDir(vmid int) string {
	return fmt.Sprintf("%s/lxc.monitor/%d", s.cgroupPrefix, vmid)
}

// renderLXC writes the LXC config of a CT for its next start.
func (s *Server) renderLXC(vmid int, conf map[string]string, raw [][2]string, rootfs string) (string, error) {
	var lines []string
	var ferr error
	add := func(k, v string) {
		v, err := lxcValue(k, v)
		if err != nil && ferr == nil {
			ferr = err
		}
		lines = append(lines, k+" = "+v)
	}
	add("lxc.include", "/usr/share/lxc/config/common.conf")
	unpriv := conf["unprivileged"] == "1"
	if unpriv {
		// what LXC's userns.conf says, without its include of a directory LXC's
		// packages do not always ship: an unprivileged CT keeps its capabilities and
		// devices (its user namespace confines them)
		for _, k := range []string{"lxc.cgroup.devices.deny", "lxc.cgroup.devices.allow", "lxc.cgroup2.devices.deny", "lxc.cgroup2.devices.allow", "lxc.cap.drop", "lxc.cap.keep", "lxc.tty.dir"} {
			lines = append(lines, k+" =")
		}
	}
	add("lxc.apparmor.profile", "unconfined")
	add("lxc.autodev", "1")
	add("lxc.cgroup.relative", "0")
	arch := conf["arch"]
	if arch == "" {
		arch = "amd64"
	}
	add("lxc.arch", arch)
	hostname := conf["hostname"]
	if hostname == "" {
		hostname = fmt.Sprintf("CT%d", vmid)
	}
	add("lxc.uts.name", hostname)
	add("lxc.rootfs.path", "dir:"+rootfs)
	add("lxc.cgroup.dir.monitor", s.monitorDir(vmid))
	add("lxc.cgroup.dir.container", s.cgroupDir(vmid))
	add("lxc.cgroup.dir.monitor.pivot", s.cgroupPrefix+"/lxc.pivot")
	add("lxc.net.0.type", "empty")
	tty := conf["tty"]
	if tty == "" {
		tty = "2"
	}
	add("lxc.tty.max", tty)
	add("lxc.console.logfile", filepath.Join(s.lxcPath, strconv.Itoa(vmid), "console.log"))
	if unpriv {
		// as pve-container: sys:mixed rather than userns.conf's sys:rw
		add("lxc.mount.auto", "sys:mixed")
		add("lxc.idmap", fmt.Sprintf("u 0 %d %d", unprivShift, unprivRange))
		add("lxc.idmap", fmt.Sprintf("g 0 %d %d", unprivShift, unprivRange))
	}
	if conf["console"] == "0" {
		add("lxc.console.path", "none")
	}
	add("lxc.environment", "TERM=linux")
	entry := conf["entrypoint"]
	if entry == "" {
		entry = "/sbin/init"
	}
	if entry != "/sbin/init" {
		// no init system sets /dev/shm up for an application container
		add("lxc.mount.entry", "shm dev/shm tmpfs rw,nosuid,nodev,create=dir 0 0")
	}
	// PVE's entrypoint goes to lxc.init.cmd as it is (startLXC passes its words as LXC 6
	// splits them)
	add("lxc.init.cmd", entry)
	// PVE 9.1 writes lxc.environment.runtime (LXC 6); LXC 5 has lxc.environment only,
	// which also reaches the init process.
	if env := conf["env"]; env != "" {
		for _, kv := range strings.Split(env, "\x00") {
			if kv != "" {
				add("lxc.environment", kv)
			}
		}
	}
	mem := int64(512)
	if v, err := strconv.ParseInt(conf["memory"], 10, 64); err == nil {
		mem = v
	}
	swap := int64(512)
	if v, err := strconv.ParseInt(conf["swap"], 10, 64); err == nil {
		swap = v
	}
	v2 := cgroupV2()
	if v2 {
		add("lxc.cgroup2.memory.max", strconv.FormatInt(mem<<20, 10))
		add("lxc.cgroup2.memory.swap.max", strconv.FormatInt(swap<<20, 10))
	} else {
		add("lxc.cgroup.memory.limit_in_bytes", strconv.FormatInt(mem<<20, 10))
		if memswAvailable() {
			add("lxc.cgroup.memory.memsw.limit_in_bytes", strconv.FormatInt((mem+swap)<<20, 10))
		}
	}
	if cl, err := strconv.ParseFloat(conf["cpulimit"], 64); err == nil && cl > 0 {
		quota := int64(cl * 100000)
		if v2 {
			add("lxc.cgroup2.cpu.max", fmt.Sprintf("%d 100000", quota))
		} else {
			add("lxc.cgroup.cpu.cfs_period_us", "100000")
			add("lxc.cgroup.cpu.cfs_quota_us", strconv.FormatInt(quota, 10))
		}
	}
	if cu, err := strconv.Atoi(conf["cpuunits"]); err == nil {
		if v2 {
			if cu < 1 {
				cu = 1
			}
			if cu > 10000 {
				cu = 10000
			}
			add("lxc.cgroup2.cpu.weight", strconv.Itoa(cu))
		} else {
			if cu < 2 {
				cu = 2
			}
			add("lxc.cgroup.cpu.shares", strconv.Itoa(cu))
		}
	}
	if cores, err := strconv.Atoi(conf["cores"]); err == nil && cores > 0 {
		if n := runtime.NumCPU(); cores > n {
			cores = n
		}
		set := "0"
		if cores > 1 {
			set = fmt.Sprintf("0-%d", cores-1)
		}
		if v2 {
			add("lxc.cgroup2.cpuset.cpus", set)
		} else {
			add("lxc.cgroup.cpuset.cpus", set)
		}
	}
	for _, kv := range raw {
		add(kv[0], kv[1])
	}
	if ferr != nil {
		return "", ferr
	}
	dir := filepath.Join(s.lxcPath, strconv.Itoa(vmid))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	p := filepath.Join(dir, "config")
	if err := writeFileAtomic(p, []byte(strings.Join(lines, "\n")+"\n"), 0o640); err != nil {
		return "", err
	}
	return p, nil
}

func (s *Server) lxcContainer(vmid int) (*lxc.Container, error) {
	c, err := lxc.NewContainer(strconv.Itoa(vmid), s.lxcPath)
	if err != nil {
		return nil, fmt.Errorf("lxc: %w", err)
	}
	return c, nil
}

// ctState is the LXC state of a CT: running, stopped, or frozen (suspended).
func (s *Server) ctState(vmid int) (state string, pid int) {
	if _, err := os.Stat(filepath.Join(s.lxcPath, strconv.Itoa(vmid), "config")); err != nil {
		return "stopped", 0
	}
	c, err := s.lxcContainer(vmid)
	if err != nil {
		return "stopped", 0
	}
	defer lxc.Release(c)
	switch c.State() {
	case lxc.RUNNING, lxc.STARTING, lxc.STOPPING, lxc.THAWED:
		return "running", c.InitPid()
	case lxc.FROZEN, lxc.FREEZING:
		return "frozen", c.InitPid()
	}
	return "stopped", 0
}

// startLXC starts a CT's container and waits until it runs.
func (s *Server) startLXC(ctx context.Context, t *task, c *ct) error {
	s.mu.Lock()
	conf := copyConf(c.conf)
	raw := append([][2]string(nil), c.lxc...)
	s.mu.Unlock()
	st, vol, err := s.rootfsVolume(conf)
	if err != nil {
		return err
	}
	rootfs, err := st.volPath(vol)
	if err != nil {
		return err
	}
	if conf["unprivileged"] == "1" {
		if err := searchableByOthers(rootfs); err != nil {
			return err
		}
	}
	if _, err := s.renderLXC(c.vmid, conf, raw, rootfs); err != nil {
		return err
	}
	s.cleanCgroups(c.vmid) // a previous run's monitor may have left its cgroup
	lc, err := s.lxcContainer(c.vmid)
	if err != nil {
		return err
	}
	defer lxc.Release(lc)
	logFile := filepath.Join(s.lxcPath, strconv.Itoa(c.vmid), "lxc.log")
	os.Remove(logFile)
	failed := func(err error) error {
		// the task log gets LXC's errors, as PVE's start task shows lxc-start's
		if b, rerr := os.ReadFile(logFile); rerr == nil {
			var lines []string
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, " ERROR ") || strings.Contains(l, " WARN ") {
					lines = append(lines, l)
				}
			}
			t.logf("%s", tail(strings.Join(lines, "\n"), 30))
		}
		if b, rerr := os.ReadFile(filepath.Join(s.lxcPath, strconv.Itoa(c.vmid), "console.log")); rerr == nil && len(b) > 0 {
			t.logf("console: %s", tail(string(b), 10))
		}
		if err != nil {
			t.logf("%v", err)
		}
		return fmt.Errorf("startup for container '%d' failed", c.vmid)
	}
	// The container is started by lxc-start in its own process, as PVE starts it (through
	// its systemd unit): liblxc moves the process that starts a container into the
	// monitor's cgroup, which must not be the emulator (nor a test binary). PVE 9.1's LXC 6
	// splits lxc.init.cmd keeping quoted words whole; LXC 5 splits it on spaces only, so
	// the words are split here as LXC 6 does and passed after "--" as the init's argv
	// (exec, no shell).
	args := append([]string{"-n", strconv.Itoa(c.vmid), "-P", s.lxcPath, "-d", "-o", logFile, "-l", "INFO", "--"}, splitQuoted(conf["entrypoint"])...)
	if out, err := exec.CommandContext(ctx, "lxc-start", args...).CombinedOutput(); err != nil {
		return failed(fmt.Errorf("lxc-start: %v: %s", err, strings.TrimSpace(string(out))))
	}
	if !lc.Wait(lxc.RUNNING, 30*time.Second) {
		return failed(nil)
	}
	s.mu.Lock()
	c.started = time.Now()
	s.mu.Unlock()
	return nil
}

// stopLXC stops a CT's container: with a timeout, by its halt signal first (shutdown),
// else at once by SIGKILL (stop).
func (s *Server) stopLXC(ctx context.Context, vmid int, timeout time.Duration, force bool) error {
	if st, _ := s.ctState(vmid); st == "stopped" {
		s.cleanCgroups(vmid)
		return nil
	}
	lc, err := s.lxcContainer(vmid)
	if err != nil {
		return err
	}
	defer lxc.Release(lc)
	if lc.State() == lxc.FROZEN {
		lc.Unfreeze()
	}
	if timeout > 0 {
		if err := lc.Shutdown(timeout); err == nil {
			s.cleanCgroups(vmid)
			return nil
		}
		if !force {
			return errors.New("container did not stop")
		}
	}
	if err := lc.Stop(); err != nil && lc.State() != lxc.STOPPED {
		return fmt.Errorf("stopping container %d: %w", vmid, err)
	}
	if !lc.Wait(lxc.STOPPED, 30*time.Second) {
		return fmt.Errorf("container %d did not stop", vmid)
	}
	s.cleanCgroups(vmid)
	return nil
}

// removeLXC removes a stopped CT's LXC directory (config, logs); the disk is the
// storage's.
func (s *Server) removeLXC(vmid int) error {
	s.cleanCgroups(vmid)
	return os.RemoveAll(filepath.Join(s.lxcPath, strconv.Itoa(vmid)))
}

// cleanCgroups removes the cgroups LXC leaves behind for a stopped CT in every
// hierarchy. The monitor's stays busy until the monitor has exited and been reaped (by
// PID 1, which may take a while), so the stop waits for it, under the CT's lock: a start
// that followed at once could otherwise lose its new monitor cgroup to a late cleanup.
func (s *Server) cleanCgroups(vmid int) {
	removeCgroupTree(s.cgroupDir(vmid), cgroupPatience)
	removeCgroupTree(s.monitorDir(vmid), cgroupPatience)
}

// cgroupPatience bounds the wait for an exited LXC monitor to leave its cgroup.
const cgroupPatience = 30 * time.Second

// cleanCgroupPrefix removes the emulator's cgroup directories when it stops.
func (s *Server) cleanCgroupPrefix() {
	removeCgroupTree(s.cgroupPrefix, cgroupPatience)
}

func cgroupMounts() []string {
	infos, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return (m.FSType != "cgroup" && m.FSType != "cgroup2") || m.Root != "/", false
	})
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, m := range infos {
		if !seen[m.Mountpoint] {
			seen[m.Mountpoint] = true
			out = append(out, m.Mountpoint)
		}
	}
	return out
}

// removeCgroupTree removes cgroup rel and everything below it, deepest first, in every
// hierarchy, waiting up to patience for cgroups that still hold (exiting) processes.
func removeCgroupTree(rel string, patience time.Duration) {
	if rel == "" || strings.Contains(rel, "..") {
		return
	}
	deadline := time.Now().Add(patience)
	for _, m := range cgroupMounts() {
		root := filepath.Join(m, rel)
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			for {
				err := syscall.Rmdir(dirs[i])
				if err == nil || !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// CgroupLeftovers lists the cgroup directories of this emulator that still exist (tests).
func (s *Server) CgroupLeftovers() []string {
	var out []string
	for _, m := range cgroupMounts() {
		p := filepath.Join(m, s.cgroupPrefix)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// searchableByOthers checks that an unprivileged CT's root (host uid 100000) can reach its
// rootfs: LXC mounts it from inside the CT's user namespace.
func searchableByOthers(p string) error {
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("unprivileged CT: its root (uid %d) cannot reach its rootfs: %s is mode %o; make the emulator's directory and its parents searchable (o+x)", unprivShift, d, fi.Mode().Perm())
		}
		if d == "/" {
			return nil
		}
	}
}

// splitQuoted splits an init command line as LXC 6's lxc_string_split_quoted does: on
// white space, a word that starts with ' or " runs to the next same quote (which is
// dropped), and there is no escaping.
func splitQuoted(cmd string) []string {
	if cmd == "" {
		return []string{"/sbin/init"}
	}
	var words []string
	state := byte(' ')
	start := 0
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' }
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		switch state {
		case ' ':
			if isSpace(c) {
				continue
			}
			start = i
			if c == '"' || c == '\'' {
				state = c
			} else {
				state = 'a'
			}
		case 'a':
			if isSpace(c) {
				words = append(words, cmd[start:i])
				state = ' '
			}
		default:
			if c == state {
				words = append(words, cmd[start+1:i])
				state = ' '
			}
		}
	}
	if state == 'a' {
		words = append(words, cmd[start:])
	}
	return words
}
