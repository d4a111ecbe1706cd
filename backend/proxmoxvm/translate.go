package proxmoxvm

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/backend/proxmoxvm/launchspec"
	"github.com/lxcri/lxcri/runtime"
)

var fieldErr = runtime.FieldErrorf

// VMSpec is what a container's VM and process are made of, translated from an OCI spec.
type VMSpec struct {
	// Options are PVE VM config keys (name, memory, cores, cpulimit, cpuunits).
	Options map[string]any
	// Process is what the launcher runs in the guest, chrooted into the image's root.
	Process ProcessSpec
}

// ProcessSpec is one process for the launcher: the guest agent runs commands with no
// environment, cwd or user of their own, so the launcher sets them.
type ProcessSpec struct {
	Args   []string `json:"args"`
	Env    []string `json:"env"`
	Cwd    string   `json:"cwd"`
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
	Root   string   `json:"root"`
	// Capabilities, NoNewPrivileges and Rlimits are applied by the launcher just before
	// it executes the process, as runc does; a nil Capabilities grants none.
	Capabilities    *launchspec.CapSets `json:"capabilities,omitempty"`
	NoNewPrivileges bool                `json:"noNewPrivileges,omitempty"`
	Rlimits         []launchspec.Rlimit `json:"rlimits,omitempty"`
}

const mib = 1 << 20

var dnsNameRe = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?)*$`)

// Translate maps an OCI spec onto a VM's options and the launcher's process. What a VM
// cannot honour is a FieldError naming the field. The process's user, capabilities,
// noNewPrivileges and rlimits are applied in the guest by the launcher. containerd's and
// the CRI's other boilerplate (default mounts, masked and read-only paths, seccomp, the
// deny-all device rule) is accepted: the VM boundary is the isolation there.
func Translate(s *specs.Spec) (*VMSpec, error) {
	if s == nil || s.Process == nil {
		return nil, fieldErr("process", "required")
	}
	vs := &VMSpec{Options: map[string]any{}}
	if s.Hostname != "" {
		if len(s.Hostname) > 253 || !dnsNameRe.MatchString(s.Hostname) {
			return nil, fieldErr("hostname", "%q is not a DNS name, which PVE requires of a VM name", s.Hostname)
		}
		vs.Options["name"] = s.Hostname
	}
	p, err := translateProcess(s.Process, true)
	if err != nil {
		return nil, err
	}
	vs.Process = *p
	for i, m := range s.Mounts {
		if vmMounts[m.Destination] && m.Type != "bind" && m.Type != "" {
			continue
		}
		return nil, fieldErr(fmt.Sprintf("mounts[%d]", i), "%s: a VM's guest has no share of this host's paths (virtiofs directory mappings are not used yet)", m.Destination)
	}
	if s.Hooks != nil && (len(s.Hooks.Prestart)+len(s.Hooks.CreateRuntime)+len(s.Hooks.CreateContainer)+len(s.Hooks.StartContainer)+len(s.Hooks.Poststart)+len(s.Hooks.Poststop) > 0) {
		return nil, fieldErr("hooks", "hooks would run on this host, not in the VM")
	}
	if s.Linux != nil {
		if err := translateLinux(s.Linux, vs); err != nil {
			return nil, err
		}
	}
	return vs, nil
}

// The mounts every guest has; containerd's default spec lists them.
var vmMounts = map[string]bool{
	"/proc": true, "/dev": true, "/dev/pts": true, "/dev/shm": true, "/dev/mqueue": true,
	"/sys": true, "/sys/fs/cgroup": true, "/run": true,
}

// translateProcess checks a process (the init, or an exec when init is false).
func translateProcess(p *specs.Process, init bool) (*ProcessSpec, error) {
	if len(p.Args) == 0 {
		return nil, fieldErr("process.args", "required")
	}
	if p.Terminal {
		return nil, fieldErr("process.terminal", "the QEMU guest agent's exec has no terminal")
	}
	if p.ConsoleSize != nil {
		return nil, fieldErr("process.consoleSize", "the QEMU guest agent's exec has no terminal")
	}
	if p.CommandLine != "" {
		return nil, fieldErr("process.commandLine", "is Windows-only")
	}
	for i, a := range p.Args {
		if strings.ContainsRune(a, 0) {
			return nil, fieldErr(fmt.Sprintf("process.args[%d]", i), "holds a NUL byte")
		}
	}
	for i, e := range p.Env {
		if !strings.Contains(e, "=") || strings.HasPrefix(e, "=") || strings.ContainsRune(e, 0) {
			return nil, fieldErr(fmt.Sprintf("process.env[%d]", i), "want NAME=VALUE without NUL")
		}
	}
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if !strings.HasPrefix(cwd, "/") || strings.ContainsRune(cwd, 0) {
		return nil, fieldErr("process.cwd", "%q: want an absolute path", p.Cwd)
	}
	if p.User.Username != "" {
		return nil, fieldErr("process.user.username", "is Windows-only")
	}
	if p.User.Umask != nil {
		return nil, fieldErr("process.user.umask", "the launcher sets no umask")
	}
	var rlimits []launchspec.Rlimit
	for i, r := range p.Rlimits {
		if _, ok := launchspec.Rlimits[r.Type]; !ok {
			return nil, fieldErr(fmt.Sprintf("process.rlimits[%d].type", i), "%q is not a Linux rlimit", r.Type)
		}
		if r.Soft > r.Hard {
			return nil, fieldErr(fmt.Sprintf("process.rlimits[%d].soft", i), "%d is above the hard limit %d", r.Soft, r.Hard)
		}
		rlimits = append(rlimits, launchspec.Rlimit{Type: r.Type, Hard: r.Hard, Soft: r.Soft})
	}
	caps, err := translateCapabilities(p.Capabilities)
	if err != nil {
		return nil, err
	}
	if p.OOMScoreAdj != nil && init {
		return nil, fieldErr("process.oomScoreAdj", "the launcher sets no OOM score in the guest")
	}
	if p.IOPriority != nil {
		return nil, fieldErr("process.ioPriority", "the launcher sets no I/O priority in the guest")
	}
	if p.Scheduler != nil {
		return nil, fieldErr("process.scheduler", "the launcher sets no scheduling policy in the guest")
	}
	if p.ExecCPUAffinity != nil {
		return nil, fieldErr("process.execCPUAffinity", "the launcher sets no CPU affinity in the guest")
	}
	if p.SelinuxLabel != "" {
		return nil, fieldErr("process.selinuxLabel", "the guest's own security modules apply")
	}
	if p.ApparmorProfile != "" {
		return nil, fieldErr("process.apparmorProfile", "the guest's own security modules apply")
	}
	return &ProcessSpec{
		Args: slices.Clone(p.Args), Env: slices.Clone(p.Env), Cwd: cwd,
		UID: p.User.UID, GID: p.User.GID, Groups: slices.Clone(p.User.AdditionalGids),
		Root:         guestRootfs,
		Capabilities: caps, NoNewPrivileges: p.NoNewPrivileges, Rlimits: rlimits,
	}, nil
}

// translateCapabilities checks every name of the five sets; the launcher gets them by
// name and maps them with the same table.
func translateCapabilities(c *specs.LinuxCapabilities) (*launchspec.CapSets, error) {
	if c == nil {
		return nil, nil
	}
	cs := &launchspec.CapSets{
		Bounding: slices.Clone(c.Bounding), Effective: slices.Clone(c.Effective),
		Inheritable: slices.Clone(c.Inheritable), Permitted: slices.Clone(c.Permitted),
		Ambient: slices.Clone(c.Ambient),
	}
	for _, set := range []struct {
		field string
		names []string
	}{{"bounding", cs.Bounding}, {"effective", cs.Effective}, {"inheritable", cs.Inheritable}, {"permitted", cs.Permitted}, {"ambient", cs.Ambient}} {
		for i, n := range set.names {
			if _, ok := launchspec.Capabilities[n]; !ok {
				return nil, fieldErr(fmt.Sprintf("process.capabilities.%s[%d]", set.field, i), "%q is not a Linux capability", n)
			}
		}
	}
	return cs, nil
}

func translateLinux(l *specs.Linux, vs *VMSpec) error {
	if len(l.UIDMappings)+len(l.GIDMappings) > 0 {
		return fieldErr("linux.uidMappings", "the process runs in the guest's own user namespace")
	}
	for i, ns := range l.Namespaces {
		if ns.Path != "" {
			return fieldErr(fmt.Sprintf("linux.namespaces[%d].path", i), "a VM cannot join another's %s namespace", ns.Type)
		}
	}
	if len(l.Sysctl) > 0 {
		return fieldErr("linux.sysctl", "the launcher sets no sysctls in the guest")
	}
	for i, d := range l.Devices {
		return fieldErr(fmt.Sprintf("linux.devices[%d]", i), "%s: devices are the guest's own", d.Path)
	}
	if l.IntelRdt != nil {
		return fieldErr("linux.intelRdt", "PVE has no RDT setting for a VM")
	}
	if l.Personality != nil {
		return fieldErr("linux.personality", "the guest's kernel has its own")
	}
	if l.MountLabel != "" {
		return fieldErr("linux.mountLabel", "the guest's own security modules apply")
	}
	if l.RootfsPropagation != "" {
		return fieldErr("linux.rootfsPropagation", "the guest sets its own mount propagation")
	}
	if l.Resources != nil {
		return translateResources(l.Resources, vs)
	}
	return nil
}

// translateResources maps memory and CPU limits onto the VM's size: memory (MiB),
// cores (CPU quota rounded up to whole vCPUs), cpulimit (the quota itself) and cpuunits
// (shares). Limits a VM has no knob for are refused.
func translateResources(r *specs.LinuxResources, vs *VMSpec) error {
	for i, d := range r.Devices {
		if d.Allow && !guestDevices[deviceRule(d)] {
			return fieldErr(fmt.Sprintf("linux.resources.devices[%d]", i), "%s: devices are the guest's own", deviceRule(d))
		}
	}
	if m := r.Memory; m != nil {
		if m.Limit != nil && *m.Limit > 0 {
			mb := (*m.Limit + mib - 1) / mib
			if mb < 16 {
				return fieldErr("linux.resources.memory.limit", "%d bytes: a VM needs at least 16 MiB", *m.Limit)
			}
			vs.Options["memory"] = mb
		}
		if m.Reservation != nil && *m.Reservation > 0 {
			return fieldErr("linux.resources.memory.reservation", "a VM's memory is fixed (ballooning is not used)")
		}
		if m.Swap != nil && *m.Swap > 0 && (m.Limit == nil || *m.Swap != *m.Limit) {
			return fieldErr("linux.resources.memory.swap", "a VM's swap is the guest's own")
		}
		if m.Kernel != nil || m.KernelTCP != nil {
			return fieldErr("linux.resources.memory.kernel", "no kernel memory limit for a VM")
		}
		if m.Swappiness != nil && *m.Swappiness != 0 {
			return fieldErr("linux.resources.memory.swappiness", "the guest's own")
		}
	}
	if c := r.CPU; c != nil {
		if c.Quota != nil && *c.Quota > 0 {
			period := uint64(100000)
			if c.Period != nil && *c.Period > 0 {
				period = *c.Period
			}
			cpus := float64(*c.Quota) / float64(period)
			if cpus > 128 {
				return fieldErr("linux.resources.cpu.quota", "%d/%d is more than PVE's 128 CPUs", *c.Quota, period)
			}
			vs.Options["cores"] = int(math.Ceil(cpus))
			vs.Options["cpulimit"] = math.Round(cpus*100) / 100
		}
		if c.Shares != nil && *c.Shares > 0 {
			units := *c.Shares
			if units < 1 {
				units = 1
			}
			if units > 262144 {
				units = 262144
			}
			vs.Options["cpuunits"] = units
		}
		if c.Cpus != "" {
			return fieldErr("linux.resources.cpu.cpus", "PVE's affinity is root@pam only")
		}
		if c.Mems != "" {
			return fieldErr("linux.resources.cpu.mems", "PVE has no NUMA node setting through the API")
		}
		if c.RealtimeRuntime != nil || c.RealtimePeriod != nil {
			return fieldErr("linux.resources.cpu.realtimeRuntime", "no realtime scheduling for a VM")
		}
	}
	if r.Pids != nil && r.Pids.Limit != nil && *r.Pids.Limit > 0 {
		return fieldErr("linux.resources.pids.limit", "the guest's own")
	}
	if r.BlockIO != nil && (r.BlockIO.Weight != nil || len(r.BlockIO.WeightDevice)+len(r.BlockIO.ThrottleReadBpsDevice)+len(r.BlockIO.ThrottleWriteBpsDevice)+len(r.BlockIO.ThrottleReadIOPSDevice)+len(r.BlockIO.ThrottleWriteIOPSDevice) > 0) {
		return fieldErr("linux.resources.blockIO", "the VM's disk limits are not set from the spec")
	}
	if len(r.HugepageLimits) > 0 {
		return fieldErr("linux.resources.hugepageLimits", "not for a VM")
	}
	if r.Network != nil {
		return fieldErr("linux.resources.network", "not for a VM")
	}
	if len(r.Rdma) > 0 {
		return fieldErr("linux.resources.rdma", "not for a VM")
	}
	if len(r.Unified) > 0 {
		return fieldErr("linux.resources.unified", "not for a VM")
	}
	return nil
}

// guestDevices are the device rules containerd's default spec allows; every guest has
// these devices.
var guestDevices = map[string]bool{
	"c *:* m": true, "b *:* m": true,
	"c 1:3": true, "c 1:5": true, "c 1:7": true, "c 1:8": true, "c 1:9": true,
	"c 5:0": true, "c 5:1": true, "c 5:2": true, "c 136:*": true, "c 10:200": true, "c 10:229": true,
}

func deviceRule(d specs.LinuxDeviceCgroup) string {
	num := func(p *int64) string {
		if p == nil {
			return "*"
		}
		return fmt.Sprint(*p)
	}
	r := d.Type + " " + num(d.Major) + ":" + num(d.Minor)
	if d.Access == "m" {
		r += " m"
	}
	return r
}
