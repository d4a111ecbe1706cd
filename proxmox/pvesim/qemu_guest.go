package pvesim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lxc/go-lxc"
)

// This file is the stand-in for what runs inside a VM. The emulator has no QEMU: a
// running VM is a privileged LXC container over the VM's boot disk (a directory holding a
// small busybox guest OS), so that what the guest agent does happens for real: exec runs
// real processes in the guest with real output and exit codes, suspend freezes them (the
// cgroup freezer), and a snapshot with vmstate keeps the frozen guest itself as the
// snapshot's memory. README.md lists where this differs from a VM.

var (
	// reVMDiskKey are the disk options of a VM config.
	reVMDiskKey  = regexp.MustCompile(`^(?:scsi|virtio|sata|ide)\d+$|^efidisk0$|^tpmstate0$`)
	reHostPCIKey = regexp.MustCompile(`^hostpci\d+$`)
	reUSBKey     = regexp.MustCompile(`^usb\d+$`)
	reSerialKey  = regexp.MustCompile(`^(?:serial|parallel)\d+$`)
)

// guestPath is the PATH of the agent's processes, a systemd service's.
const guestPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// guestAgentBinary is where the guest OS has its QEMU guest agent. The stand-in agent
// answers only while the guest's root has it, so a guest without the agent installed
// (or with it removed) behaves as one whose agent never starts.
const guestAgentBinary = "/usr/sbin/qemu-ga"

// Output a guest agent keeps per stream of an exec'd process (qemu-ga's
// GUEST_EXEC_MAX_OUTPUT); the rest is dropped and the stream flagged truncated.
const guestExecMaxOutput = 16 << 20

// allocVMDisk makes an empty VM disk (prefix "vm", or "base" for a template) for vmid.
func (st *storage) allocVMDisk(vmid int, prefix string) (string, string, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for n := 0; n < 1000; n++ {
		vol := fmt.Sprintf("%s-%d-disk-%d", prefix, vmid, n)
		p, err := st.volPath(vol)
		if err != nil {
			return "", "", err
		}
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", "", err
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return "", "", err
		}
		return vol, p, nil
	}
	return "", "", fmt.Errorf("unable to allocate a disk name for %d on storage '%s'", vmid, st.id)
}

// guestInit is the guest OS's PID 1: it runs until the guest is shut down (SIGTERM, the
// stand-in's ACPI power button).
const guestInit = `#!/bin/sh
# PID 1 of pvesim's stand-in guest OS: runs until powered down.
trap 'exit 0' TERM
while :; do sleep 3600 & wait $!; done
`

// guestAgentStub marks the guest agent as installed; the emulator answers for it.
const guestAgentStub = `#!/bin/sh
# pvesim's stand-in guest: the emulator answers the guest agent's commands while this
# file exists in the guest.
exit 0
`

// buildGuestOS writes the stand-in guest OS into an empty disk directory: busybox (from
// the host's busybox-static) with its applets, a minimal /etc, an init and the agent.
func buildGuestOS(dir string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		bb = "/bin/busybox"
	}
	list, err := exec.Command(bb, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("busybox (busybox-static) is needed for the stand-in guest OS: %v", err)
	}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "var/tmp", "var/log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	os.Chmod(filepath.Join(dir, "tmp"), 0o1777|os.ModeSticky)
	os.Chmod(filepath.Join(dir, "var/tmp"), 0o1777|os.ModeSticky)
	if err := copyFile(bb, filepath.Join(dir, "bin/busybox")); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(dir, "bin/busybox"), 0o755); err != nil {
		return err
	}
	for _, a := range strings.Fields(string(list)) {
		p := filepath.Join(dir, a)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Symlink("/bin/busybox", p); err != nil {
			return err
		}
	}
	os.Remove(filepath.Join(dir, "sbin/init"))
	files := map[string]string{
		"sbin/init":           guestInit,
		"usr/sbin/qemu-ga":    guestAgentStub,
		"etc/passwd":          "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":           "root:x:0:\nnogroup:x:65534:\n",
		"etc/hostname":        "pvesim-guest\n",
		"etc/os-release":      "NAME=\"pvesim stand-in guest\"\nID=pvesim\n",
		"etc/pvesim-guest.md": "This is the root of pvesim's stand-in guest OS (an LXC container standing in for a QEMU VM).\n",
	}
	for name, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasPrefix(name, "sbin/") || strings.HasPrefix(name, "usr/sbin/") {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			return err
		}
	}
	return nil
}

// guest is one run of a VM's stand-in: an LXC container named uniquely per run, so a
// guest a snapshot holds and a newer run of the same VM never collide.
type guest struct {
	s       *Server
	vmid    int
	name    string
	started time.Time

	mu      sync.Mutex
	execs   map[int]*guestExec
	nextPID int
	lastCPU time.Duration
	lastAt  time.Time
}

// guestExec is one process the agent started.
type guestExec struct {
	done           chan struct{}
	out, err       capBuffer
	exitCode       int
	startErr       error
	outTrunc, errT bool
}

// capBuffer keeps the first guestExecMaxOutput bytes written to it.
type capBuffer struct {
	mu        sync.Mutex
	b         bytes.Buffer
	truncated bool
}

func (c *capBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := guestExecMaxOutput - c.b.Len()
	if len(p) > room {
		c.b.Write(p[:max(room, 0)])
		c.truncated = true
		return len(p), nil
	}
	return c.b.Write(p)
}

func (c *capBuffer) result() ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.b.Bytes()...), c.truncated
}

func (s *Server) qemuLXCPath() string { return filepath.Join(s.cfg.Dir, "qemu") }

func (s *Server) guestCgroup(name string) string { return s.cgroupPrefix + "/qemu/" + name }
func (s *Server) guestMonitorCgroup(name string) string {
	return s.cgroupPrefix + "/qemu.monitor/" + name
}

// startGuest boots a VM's stand-in over its boot disk with the VM's memory and CPU
// settings, and waits until its init runs.
func (s *Server) startGuest(ctx context.Context, t *task, v *vm) (*guest, error) {
	s.mu.Lock()
	conf := copyConf(v.conf)
	s.taskSeq++ // also numbers guest runs: unique within the emulator
	name := fmt.Sprintf("vm%d-%d", v.vmid, s.taskSeq)
	s.mu.Unlock()
	st, vol, err := s.bootDisk(conf)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("storage of the boot disk does not exist")
	}
	root, err := st.volPath(vol)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(root, "sbin/init")); err != nil {
		return nil, fmt.Errorf("no bootable guest OS on %s:%s (pvesim builds it from busybox-static)", st.id, vol)
	}
	dir := filepath.Join(s.qemuLXCPath(), name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	lines, err := s.guestLXCConfig(v.vmid, name, conf, root)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, "config"), []byte(strings.Join(lines, "\n")+"\n"), 0o640); err != nil {
		return nil, err
	}
	g := &guest{s: s, vmid: v.vmid, name: name, execs: map[int]*guestExec{}, nextPID: 1000}
	logFile := filepath.Join(dir, "lxc.log")
	// lxc-start in a process of its own, as for CTs: liblxc moves the process that starts
	// a container into the monitor's cgroup.
	args := []string{"-n", name, "-P", s.qemuLXCPath(), "-d", "-o", logFile, "-l", "INFO", "--", "/sbin/init"}
	if out, err := exec.CommandContext(ctx, "lxc-start", args...).CombinedOutput(); err != nil {
		g.destroy()
		return nil, fmt.Errorf("start failed: lxc-start: %v: %s", err, strings.TrimSpace(string(out)))
	}
	lc, err := g.container()
	if err != nil {
		g.destroy()
		return nil, err
	}
	defer lxc.Release(lc)
	if !lc.Wait(lxc.RUNNING, 30*time.Second) {
		if b, rerr := os.ReadFile(logFile); rerr == nil && t != nil {
			t.logf("%s", tail(string(b), 20))
		}
		g.destroy()
		return nil, fmt.Errorf("start failed: the guest did not come up")
	}
	g.started = time.Now()
	return g, nil
}

// guestLXCConfig is the stand-in's LXC config: the VM's disk as root, memory as the
// memory limit, cores x sockets as a cpuset, cpulimit as a CFS quota, no network.
func (s *Server) guestLXCConfig(vmid int, name string, conf map[string]string, root string) ([]string, error) {
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
	add("lxc.apparmor.profile", "unconfined")
	add("lxc.autodev", "1")
	add("lxc.cgroup.relative", "0")
	add("lxc.arch", "amd64")
	hostname := conf["name"]
	if hostname == "" {
		hostname = fmt.Sprintf("VM%d", vmid)
	}
	add("lxc.uts.name", hostname)
	add("lxc.rootfs.path", "dir:"+root)
	add("lxc.cgroup.dir.monitor", s.guestMonitorCgroup(name))
	add("lxc.cgroup.dir.container", s.guestCgroup(name))
	add("lxc.cgroup.dir.monitor.pivot", s.cgroupPrefix+"/lxc.pivot")
	add("lxc.net.0.type", "empty")
	add("lxc.tty.max", "0")
	add("lxc.signal.halt", "SIGTERM")
	add("lxc.console.logfile", filepath.Join(s.qemuLXCPath(), name, "console.log"))
	add("lxc.mount.entry", "shm dev/shm tmpfs rw,nosuid,nodev,create=dir 0 0")
	mem := int64(512)
	if v, err := strconv.ParseInt(conf["memory"], 10, 64); err == nil {
		mem = v
	}
	v2 := cgroupV2()
	if v2 {
		add("lxc.cgroup2.memory.max", strconv.FormatInt(mem<<20, 10))
	} else {
		add("lxc.cgroup.memory.limit_in_bytes", strconv.FormatInt(mem<<20, 10))
	}
	cores, sockets := 1, 1
	if n, err := strconv.Atoi(conf["cores"]); err == nil && n > 0 {
		cores = n
	}
	if n, err := strconv.Atoi(conf["sockets"]); err == nil && n > 0 {
		sockets = n
	}
	vcpus := cores * sockets
	if n, err := strconv.Atoi(conf["vcpus"]); err == nil && n > 0 && n < vcpus {
		vcpus = n
	}
	if n := runtime.NumCPU(); vcpus > n {
		vcpus = n
	}
	set := "0"
	if vcpus > 1 {
		set = fmt.Sprintf("0-%d", vcpus-1)
	}
	if v2 {
		add("lxc.cgroup2.cpuset.cpus", set)
	} else {
		add("lxc.cgroup.cpuset.cpus", set)
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
	return lines, ferr
}

func (g *guest) container() (*lxc.Container, error) {
	c, err := lxc.NewContainer(g.name, g.s.qemuLXCPath())
	if err != nil {
		return nil, fmt.Errorf("lxc: %w", err)
	}
	return c, nil
}

// state is running, frozen (suspended) or stopped, with the init's host pid.
func (g *guest) state() (string, int) {
	if _, err := os.Stat(filepath.Join(g.s.qemuLXCPath(), g.name, "config")); err != nil {
		return "stopped", 0
	}
	lc, err := g.container()
	if err != nil {
		return "stopped", 0
	}
	defer lxc.Release(lc)
	switch lc.State() {
	case lxc.RUNNING, lxc.STARTING, lxc.STOPPING, lxc.THAWED:
		return "running", lc.InitPid()
	case lxc.FROZEN, lxc.FREEZING:
		return "frozen", lc.InitPid()
	}
	return "stopped", 0
}

func (g *guest) memoryUsage() int64 {
	lc, err := g.container()
	if err != nil {
		return 0
	}
	defer lxc.Release(lc)
	m, err := lc.MemoryUsage()
	if err != nil {
		return 0
	}
	return int64(m)
}

// cpuFraction is the guest's CPU use since the previous sample, as a fraction of the
// host's CPUs (PVE's "cpu").
func (g *guest) cpuFraction() float64 {
	lc, err := g.container()
	if err != nil {
		return 0
	}
	defer lxc.Release(lc)
	used, err := lc.CPUTime()
	if err != nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	prevCPU, prevAt := g.lastCPU, g.lastAt
	if prevAt.IsZero() {
		prevCPU, prevAt = 0, g.started
	}
	g.lastCPU, g.lastAt = used, now
	wall := now.Sub(prevAt)
	if wall <= 0 || used < prevCPU {
		return 0
	}
	return float64(used-prevCPU) / float64(wall) / float64(runtime.NumCPU())
}

func (g *guest) freeze() error {
	lc, err := g.container()
	if err != nil {
		return err
	}
	defer lxc.Release(lc)
	return lc.Freeze()
}

func (g *guest) thaw() error {
	lc, err := g.container()
	if err != nil {
		return err
	}
	defer lxc.Release(lc)
	return lc.Unfreeze()
}

// stop ends the guest: with a timeout, by the power button first (shutdown), else at
// once by SIGKILL (QEMU killed).
func (g *guest) stop(timeout time.Duration, force bool) error {
	if st, _ := g.state(); st == "stopped" {
		return nil
	}
	lc, err := g.container()
	if err != nil {
		return err
	}
	defer lxc.Release(lc)
	if timeout > 0 {
		if lc.State() == lxc.FROZEN {
			// a paused VM ignores its power button
			if !force {
				return errors.New("VM quit/powerdown failed - got timeout")
			}
		} else if err := lc.Shutdown(timeout); err == nil {
			return nil
		} else if !force {
			return errors.New("VM quit/powerdown failed - got timeout")
		}
	}
	if lc.State() == lxc.FROZEN {
		lc.Unfreeze()
	}
	if err := lc.Stop(); err != nil && lc.State() != lxc.STOPPED {
		return fmt.Errorf("stopping the guest: %w", err)
	}
	if !lc.Wait(lxc.STOPPED, 30*time.Second) {
		return fmt.Errorf("the guest did not stop")
	}
	return nil
}

// destroy stops the guest and removes its LXC directory and cgroups.
func (g *guest) destroy() error {
	if err := g.stop(0, true); err != nil {
		return err
	}
	g.waitExecs()
	removeCgroupTree(g.s.guestCgroup(g.name), cgroupPatience)
	removeCgroupTree(g.s.guestMonitorCgroup(g.name), cgroupPatience)
	return os.RemoveAll(filepath.Join(g.s.qemuLXCPath(), g.name))
}

// waitExecs waits for the agent's processes to be reaped once the guest is gone.
func (g *guest) waitExecs() {
	g.mu.Lock()
	var dones []chan struct{}
	for _, e := range g.execs {
		dones = append(dones, e.done)
	}
	g.mu.Unlock()
	for _, d := range dones {
		select {
		case <-d:
		case <-time.After(30 * time.Second):
		}
	}
}

// hasAgent says whether the guest's root has the agent installed.
func (g *guest) hasAgent(pid int) bool {
	fi, err := os.Stat(fmt.Sprintf("/proc/%d/root%s", pid, guestAgentBinary))
	return err == nil && fi.Mode().IsRegular()
}

// findProgram resolves argv[0] in the guest as the agent's spawn does (PATH search for a
// bare name), so a missing program is an error of exec itself, as with qemu-ga.
func (g *guest) findProgram(pid int, prog string) error {
	root := fmt.Sprintf("/proc/%d/root", pid)
	executable := func(p string) bool {
		fi, err := os.Stat(root + p)
		return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
	}
	if strings.Contains(prog, "/") {
		if executable(prog) {
			return nil
		}
	} else {
		for _, d := range strings.Split(guestPath, ":") {
			if executable(d + "/" + prog) {
				return nil
			}
		}
	}
	return fmt.Errorf("Failed to execute child process “%s” (No such file or directory)", prog)
}

// exec starts argv in the guest as the agent does: no environment but PATH, cwd "/",
// root, stdin the input data (or nothing), stdout and stderr captured.
func (g *guest) exec(argv []string, input []byte, hasInput bool) (int, error) {
	st, pid := g.state()
	if st != "running" {
		return 0, fmt.Errorf("guest is %s", st)
	}
	if err := g.findProgram(pid, argv[0]); err != nil {
		return 0, err
	}
	args := append([]string{"-n", g.name, "-P", g.s.qemuLXCPath(), "--clear-env", "-v", "PATH=" + guestPath, "--"}, argv...)
	cmd := exec.Command("lxc-attach", args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + guestPath}
	e := &guestExec{done: make(chan struct{})}
	cmd.Stdout = &e.out
	cmd.Stderr = &e.err
	if hasInput {
		cmd.Stdin = bytes.NewReader(input)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	g.mu.Lock()
	g.nextPID++
	id := g.nextPID
	g.execs[id] = e
	g.mu.Unlock()
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			e.exitCode = ee.ExitCode()
			if ee.ExitCode() < 0 {
				e.exitCode = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
			}
		default:
			e.startErr = err
			e.exitCode = 255
		}
		close(e.done)
	}()
	return id, nil
}

// execStatus is guest-exec-status: running, or the exit code and output of an exited
// process, which the agent then forgets (a second query is an unknown pid).
func (g *guest) execStatus(id int) (map[string]any, error) {
	g.mu.Lock()
	e := g.execs[id]
	g.mu.Unlock()
	if e == nil {
		return nil, fmt.Errorf("Invalid parameter 'pid'")
	}
	select {
	case <-e.done:
	default:
		return map[string]any{"exited": 0}, nil
	}
	g.mu.Lock()
	delete(g.execs, id)
	g.mu.Unlock()
	res := map[string]any{"exited": 1, "exitcode": e.exitCode}
	out, outTrunc := e.out.result()
	errData, errTrunc := e.err.result()
	if len(out) > 0 {
		res["out-data"] = perlBytes(out)
		if outTrunc {
			res["out-truncated"] = 1
		}
	}
	if len(errData) > 0 {
		res["err-data"] = perlBytes(errData)
		if errTrunc {
			res["err-truncated"] = 1
		}
	}
	return res, nil
}

// perlBytes is how PVE's JSON carries the bytes it decoded from the agent's base64: a
// Perl byte string is encoded one character per byte, so bytes >= 0x80 arrive as the
// characters U+0080..U+00FF (a client maps each character back to its byte).
func perlBytes(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}
