package proxmoxlxc

import (
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/backend/lxcstart"
	"github.com/lxcri/lxcri/runtime"
)

// fieldErr is the error for a spec field a PVE CT cannot honour (InvalidArgument naming it).
var fieldErr = runtime.FieldErrorf

// CTSpec is what a CT is made of, translated from an OCI spec.
type CTSpec struct {
	// Options are PVE create keys (hostname, memory, swap, cores, cpulimit, cpuunits).
	Options map[string]any
	// Files are the pod's files CRI bind-mounts into every container (/etc/hosts,
	// /etc/resolv.conf, /etc/hostname): their content is written into the CT's root
	// before the task's process starts.
	Files []PodFile
}

const mib = 1 << 20

var hostnameRe = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?)*$`)

// Translate maps an OCI spec onto PVE CT options. What PVE cannot honour is a FieldError
// naming the field. The process's capabilities, noNewPrivileges, rlimits and oomScoreAdj
// apply to it as under runc (see translateProcess). containerd's and the CRI's other
// boilerplate (default mounts, the deny-all device rule, masked and read-only paths,
// seccomp) is accepted: a PVE CT is always an unprivileged CT whose own equivalents (user
// namespace, PVE's AppArmor profile) apply.
func Translate(s *specs.Spec) (*CTSpec, error) {
	if s == nil || s.Process == nil {
		return nil, fieldErr("process", "required")
	}
	ct := &CTSpec{Options: map[string]any{}}
	if s.Hostname != "" {
		if len(s.Hostname) > 253 || !hostnameRe.MatchString(s.Hostname) {
			return nil, fieldErr("hostname", "%q is not a DNS name, which PVE requires", s.Hostname)
		}
		ct.Options["hostname"] = s.Hostname
	}
	if err := translateProcess(s.Process); err != nil {
		return nil, err
	}
	if err := translateMounts(s.Mounts, ct); err != nil {
		return nil, err
	}
	if _, ok := ct.Options["hostname"]; !ok {
		if err := podHostname(ct); err != nil {
			return nil, err
		}
	}
	if s.Hooks != nil && (len(s.Hooks.Prestart)+len(s.Hooks.CreateRuntime)+len(s.Hooks.CreateContainer)+len(s.Hooks.StartContainer)+len(s.Hooks.Poststart)+len(s.Hooks.Poststop) > 0) {
		return nil, fieldErr("hooks", "PVE runs its own hooks only (a hookscript is root@pam only, and no API token qualifies)")
	}
	if s.Linux != nil {
		if err := translateLinux(s.Linux, s.Annotations[criContainerType] == criContainer, ct); err != nil {
			return nil, err
		}
	}
	return ct, nil
}

// translateProcess checks the task's init process. It needs no CT option: the CT's own
// init is lxcri-pause, and the task's init is attached to the CT like any exec'ed process
// (lxcri-start's exec mode, which sets its user, groups, umask, cwd, environment,
// capabilities, no_new_privs, rlimits and oom_score_adj), so PVE's entrypoint and env keys
// would not reach it, and the environment stays out of the CT config, where everyone with
// VM.Audit on the CT could read it.
func translateProcess(p *specs.Process) error {
	if p.ConsoleSize != nil && !p.Terminal {
		return fieldErr("process.consoleSize", "set without process.terminal")
	}
	if err := checkConfinement(p); err != nil {
		return err
	}
	_, err := lxcstart.ExecSpec(p)
	return err
}

// checkConfinement refuses a process's own AppArmor profile or SELinux label: every
// process of a CT runs under PVE's AppArmor profile for it.
func checkConfinement(p *specs.Process) error {
	if p.SelinuxLabel != "" {
		return fieldErr("process.selinuxLabel", "PVE confines CTs with its own AppArmor profile")
	}
	if p.ApparmorProfile != "" {
		return fieldErr("process.apparmorProfile", "PVE confines CTs with its own AppArmor profile (lxc.apparmor.profile is root@pam only)")
	}
	return nil
}

// The mounts a PVE CT has anyway; containerd's default spec and the CRI list them.
var ctMounts = map[string]bool{
	"/proc": true, "/dev": true, "/dev/pts": true, "/dev/shm": true, "/dev/mqueue": true,
	"/sys": true, "/sys/fs/cgroup": true, "/run": true,
}

// podFiles are the files of the pod CRI bind-mounts into each container. A PVE CT has
// these three files anyway (PVE writes them from the CT's hostname, nameserver and
// searchdomain): the pod's content goes into the CT's root instead of a mount.
var podFiles = map[string]bool{"/etc/hosts": true, "/etc/resolv.conf": true, "/etc/hostname": true}

// PodFile is one of the pod's files to write into the CT's root.
type PodFile struct {
	Field    string // mounts[i], for errors
	Dest     string // /etc/hosts, /etc/resolv.conf or /etc/hostname
	Source   string // the file on this host (CRI's, in containerd's sandbox state)
	ReadOnly bool
}

func translateMounts(ms []specs.Mount, ct *CTSpec) error {
	for i, m := range ms {
		field := fmt.Sprintf("mounts[%d]", i)
		bind := m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
		switch {
		case ctMounts[m.Destination] && !bind:
			continue
		case m.Destination == "/dev/shm":
			// CRI binds the pod's shared memory (a tmpfs of the sandbox's); a CT cannot
			// share another's, so it keeps its own /dev/shm.
			continue
		case podFiles[m.Destination] && bind:
			if !filepath.IsAbs(m.Source) || strings.ContainsRune(m.Source, 0) {
				return fieldErr(field+".source", "%q: want an absolute path", m.Source)
			}
			ct.Files = append(ct.Files, PodFile{Field: field, Dest: m.Destination, Source: m.Source, ReadOnly: slices.Contains(m.Options, "ro")})
			continue
		}
		return fieldErr(field, "%s: PVE mounts host paths into a CT only for root@pam (a mount point mp[n] with a host path), and no API token qualifies; only CRI's /etc/hosts, /etc/resolv.conf and /etc/hostname reach a CT (as content)", m.Destination)
	}
	return nil
}

// podHostname makes the pod's hostname, from the /etc/hostname CRI mounts, the CT's when
// the spec has none: a CRI container on the node's network has no UTS namespace of its
// own and so no hostname in its spec, but a CT always has its own.
func podHostname(ct *CTSpec) error {
	for _, f := range ct.Files {
		if f.Dest != "/etc/hostname" {
			continue
		}
		b, err := readPodFile(f.Source)
		if err != nil {
			return fieldErr(f.Field, "%s: %v", f.Source, err)
		}
		name := strings.TrimSpace(string(b))
		if name == "" {
			return nil
		}
		if len(name) > 253 || !hostnameRe.MatchString(name) {
			return fieldErr(f.Field, "%s holds %q, not a DNS name, which PVE requires", f.Source, name)
		}
		ct.Options["hostname"] = name
	}
	return nil
}

// The CRI's annotation saying what a task is: a pod's sandbox or one of its containers.
const (
	criContainerType = "io.kubernetes.cri.container-type"
	criContainer     = "container"
)

// translateLinux maps spec.linux. criContainer says the task is a container of a CRI pod,
// whose namespace paths name its sandbox's: the sandbox is a CT of its own, and PVE lets
// no CT join another's namespaces, so the container's CT keeps its own.
func translateLinux(l *specs.Linux, criContainer bool, ct *CTSpec) error {
	if len(l.UIDMappings)+len(l.GIDMappings) > 0 {
		return fieldErr("linux.uidMappings", "PVE maps an unprivileged CT's ids itself")
	}
	for i, ns := range l.Namespaces {
		if ns.Path != "" && !criContainer {
			return fieldErr(fmt.Sprintf("linux.namespaces[%d].path", i), "a PVE CT cannot join another's %s namespace", ns.Type)
		}
	}
	if len(l.Sysctl) > 0 {
		return fieldErr("linux.sysctl", "PVE sets no sysctls for a CT (lxc.sysctl is root@pam only)")
	}
	for i, d := range l.Devices {
		return fieldErr(fmt.Sprintf("linux.devices[%d]", i), "%s: PVE passes devices only for root@pam (dev[n]), and no API token qualifies", d.Path)
	}
	if l.CgroupsPath != "" && strings.ContainsAny(l.CgroupsPath, "\n\x00") {
		return fieldErr("linux.cgroupsPath", "invalid")
	}
	if l.IntelRdt != nil {
		return fieldErr("linux.intelRdt", "PVE has no RDT setting")
	}
	if l.Personality != nil {
		return fieldErr("linux.personality", "PVE sets the CT's arch, not a personality")
	}
	if l.MountLabel != "" {
		return fieldErr("linux.mountLabel", "PVE confines CTs with AppArmor")
	}
	if l.RootfsPropagation != "" {
		return fieldErr("linux.rootfsPropagation", "PVE sets a CT's mount propagation itself")
	}
	if l.Resources != nil {
		return translateResources(l.Resources, ct)
	}
	return nil
}

// ctDevices are the device rules every PVE CT has (pve-container's common LXC config):
// mknod of any device, and the usual character devices. A spec may allow these; others
// only root@pam could add.
var ctDevices = map[string]bool{
	"c *:* m": true, "b *:* m": true,
	"c 1:3": true, "c 1:5": true, "c 1:7": true, "c 1:8": true, "c 1:9": true,
	"c 5:0": true, "c 5:1": true, "c 5:2": true, "c 136:*": true, "c 10:200": true, "c 10:229": true,
}

func deviceRule(d specs.LinuxDeviceCgroup) (key string, rw bool) {
	num := func(p *int64) string {
		if p == nil || *p < 0 {
			return "*"
		}
		return fmt.Sprint(*p)
	}
	typ := d.Type
	if typ == "" || typ == "a" {
		typ = "a"
	}
	key = typ + " " + num(d.Major) + ":" + num(d.Minor)
	if d.Access == "m" {
		return key + " m", false
	}
	return key, true
}

func translateResources(r *specs.LinuxResources, ct *CTSpec) error {
	for i, d := range r.Devices {
		// containerd's default starts with deny-all, which a CT's device list does anyway.
		if !d.Allow {
			continue
		}
		if key, _ := deviceRule(d); !ctDevices[key] {
			return fieldErr(fmt.Sprintf("linux.resources.devices[%d]", i), "%s %s: PVE allows other devices only for root@pam (dev[n]), and no API token qualifies", key, d.Access)
		}
	}
	if m := r.Memory; m != nil {
		var limit int64
		if m.Limit != nil && *m.Limit > 0 {
			limit = *m.Limit
			if limit%mib != 0 || limit < 16*mib {
				return fieldErr("linux.resources.memory.limit", "%d: PVE sets memory in whole MiB, at least 16", limit)
			}
			ct.Options["memory"] = limit / mib
		}
		if m.Swap != nil && *m.Swap != 0 {
			switch {
			case *m.Swap < 0:
				return fieldErr("linux.resources.memory.swap", "PVE has no unlimited swap")
			case limit == 0:
				return fieldErr("linux.resources.memory.swap", "set without memory.limit")
			case *m.Swap < limit || (*m.Swap-limit)%mib != 0:
				return fieldErr("linux.resources.memory.swap", "%d: memory+swap must be at least memory.limit and differ from it by whole MiB", *m.Swap)
			}
			ct.Options["swap"] = (*m.Swap - limit) / mib
		} else if limit > 0 {
			// runc's default is swap up to the limit again; PVE's 512 MiB would differ
			// with every limit, so say what happens: no swap beyond the limit.
			ct.Options["swap"] = int64(0)
		}
		switch {
		case m.Reservation != nil && *m.Reservation > 0:
			return fieldErr("linux.resources.memory.reservation", "PVE has no memory reservation")
		case m.Kernel != nil || m.KernelTCP != nil:
			return fieldErr("linux.resources.memory.kernel", "PVE has no kernel memory limit")
		case m.Swappiness != nil:
			return fieldErr("linux.resources.memory.swappiness", "PVE has no swappiness setting")
		case m.DisableOOMKiller != nil && *m.DisableOOMKiller:
			return fieldErr("linux.resources.memory.disableOOMKiller", "PVE always keeps the OOM killer")
		}
	}
	if c := r.CPU; c != nil {
		if c.Shares != nil && *c.Shares > 0 {
			if *c.Shares > 262144 {
				return fieldErr("linux.resources.cpu.shares", "%d: PVE's cpuunits go up to 262144", *c.Shares)
			}
			ct.Options["cpuunits"] = int(*c.Shares)
		}
		if c.Quota != nil && *c.Quota > 0 {
			period := uint64(100000)
			if c.Period != nil && *c.Period > 0 {
				period = *c.Period
			}
			limit := float64(*c.Quota) / float64(period)
			rounded := math.Round(limit*100) / 100
			if rounded != limit || limit > 8192 {
				return fieldErr("linux.resources.cpu.quota", "%d/%d: PVE's cpulimit takes CPUs with two decimals, up to 8192", *c.Quota, period)
			}
			ct.Options["cpulimit"] = strconv.FormatFloat(limit, 'f', -1, 64)
			ct.Options["cores"] = int(math.Ceil(limit))
		}
		switch {
		case c.Cpus != "":
			return fieldErr("linux.resources.cpu.cpus", "PVE chooses a CT's CPUs itself (it takes a number of cores)")
		case c.Mems != "":
			return fieldErr("linux.resources.cpu.mems", "PVE has no memory node setting")
		case c.RealtimeRuntime != nil || c.RealtimePeriod != nil:
			return fieldErr("linux.resources.cpu.realtimeRuntime", "PVE has no realtime scheduling setting")
		case c.Burst != nil:
			return fieldErr("linux.resources.cpu.burst", "PVE has no CPU burst setting")
		case c.Idle != nil && *c.Idle != 0:
			return fieldErr("linux.resources.cpu.idle", "PVE has no idle scheduling setting")
		}
	}
	switch {
	case r.Pids != nil && r.Pids.Limit != nil && *r.Pids.Limit > 0:
		return fieldErr("linux.resources.pids.limit", "PVE has no pids limit (lxc.cgroup2.pids.max is root@pam only)")
	case r.BlockIO != nil:
		return fieldErr("linux.resources.blockIO", "PVE sets I/O limits per mount point, not per CT")
	case len(r.HugepageLimits) > 0:
		return fieldErr("linux.resources.hugepageLimits", "PVE has no hugepage limit for a CT")
	case r.Network != nil:
		return fieldErr("linux.resources.network", "PVE sets rates per network device, not per CT")
	case len(r.Rdma) > 0:
		return fieldErr("linux.resources.rdma", "PVE has no RDMA limit")
	case len(r.Unified) > 0:
		return fieldErr("linux.resources.unified", "PVE's raw cgroup keys are root@pam only")
	}
	return nil
}
