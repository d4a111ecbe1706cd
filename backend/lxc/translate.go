package lxc

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/pkg/identifiers"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/runtime"
)

// FieldError says which field of the OCI spec cannot be honoured, and why; it is the
// one every backend uses.
type FieldError = runtime.FieldError

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_./:-]*$`)

// keyField names the entry key of the map at field: field.key, or field["key"] when the
// key holds anything but plain name characters.
func keyField(field, key string) string {
	if plainKey.MatchString(key) {
		return field + "." + key
	}
	return field + "[" + strconv.Quote(key) + "]"
}

func fieldErr(field, format string, args ...any) error {
	return runtime.FieldErrorf(field, format, args...)
}

// File is a file the container's configuration refers to (seccomp policy, hook
// descriptions); the backend writes it beside the configuration.
type File struct {
	Path string
	Data []byte
	Mode fs.FileMode
}

// CgroupLayout tells where the cgroup controllers of the host are.
type CgroupLayout struct {
	// Unified is a pure cgroup v2 host.
	Unified bool
	// UnifiedControllers are the controllers on the v2 hierarchy of a hybrid host (here:
	// hugetlb); ignored when Unified.
	UnifiedControllers []string
}

// oomCounters is the file holding the oom_kill count of cgroup rel's memory controller.
func (l CgroupLayout) oomCounters(rel string) string {
	switch {
	case l.Unified:
		return "/sys/fs/cgroup/" + rel + "/memory.events"
	case l.v2("memory"):
		return "/sys/fs/cgroup/unified/" + rel + "/memory.events"
	default:
		return "/sys/fs/cgroup/memory/" + rel + "/memory.oom_control"
	}
}

func (l CgroupLayout) v2(controller string) bool {
	if l.Unified {
		return true
	}
	for _, c := range l.UnifiedControllers {
		if c == controller {
			return true
		}
	}
	return false
}

// Options is what Translate needs besides the spec.
type Options struct {
	// Name is the LXC container name (the container id).
	Name string
	// Namespace is the containerd namespace (part of the monitor cgroup name).
	Namespace string
	// Rootfs is the absolute host path of the mounted root filesystem.
	Rootfs string
	// Bundle is the OCI bundle directory; relative mount sources are relative to it.
	Bundle string
	// Dir is the LXC container directory (LXCPATH/NAME), where files are written.
	Dir string
	// Helper is the absolute path of lxcri-start (used as LXC hook).
	Helper string
	// LogFile and LogLevel configure liblxc's log.
	LogFile  string
	LogLevel string
	// Cgroup is the host's cgroup layout.
	Cgroup CgroupLayout
	// Stat returns the mode of a host path (os.Stat's); it tells bind mounts of files from
	// those of directories, and masked files from masked directories. Nil: every path is
	// taken for a directory.
	Stat func(path string) (fs.FileMode, error)
}

// InitProcess is what the start helper needs besides the configuration.
type InitProcess struct {
	Args     []string
	Env      []string
	Umask    uint32
	Terminal bool
	// CapInheritable is the inheritable capability set (the helper sets it before start).
	CapInheritable uint64
	ConsoleSize    *specs.Box
}

// Result is the LXC form of an OCI spec.
type Result struct {
	// items are the configuration lines; only translator.add appends to them.
	items []item
	// MountPoints are the mount points to create before the container starts (by
	// createMountPoints, resolved inside their base), in the order of the mounts.
	MountPoints []MountPoint
	Files       []File
	Init        InitProcess
	// CgroupPath is the container's cgroup, relative to the root of each hierarchy.
	CgroupPath string
	// MonitorCgroupPath is the cgroup of the container's monitor (the start helper).
	MonitorCgroupPath string
	// OOMCountFile is where the stop hook saves the cgroup's OOM kill count before
	// liblxc removes the cgroup ("" without a helper).
	OOMCountFile string
	// MonitorPivotPath is where liblxc moves the monitor before it exits.
	MonitorPivotPath string
	// Poststart and Poststop hooks run from the shim (host side), not from liblxc.
	Poststart, Poststop []specs.Hook
}

// MonitorCgroupRoot is the cgroup under which lxcri puts the containers' monitors.
const MonitorCgroupRoot = "lxcri.monitor"

type translator struct {
	spec *specs.Spec
	o    *Options
	r    *Result
	// namespaces the container gets: cloned (new) or shared (path)
	clone  map[specs.LinuxNamespaceType]bool
	shared map[specs.LinuxNamespaceType]string
	// ptmx: the spec mounts its own devpts, /dev/ptmx must be made
	ptmx bool
}

// Translate turns an OCI runtime spec into LXC configuration items. It is a pure function
// of its arguments (Options.Stat aside). Whatever the spec asks for that LXC cannot do is
// an error naming the field (a *FieldError, wrapping errdefs.ErrInvalidArgument); nothing
// is silently dropped.
func Translate(spec *specs.Spec, o Options) (res *Result, err error) {
	if spec == nil {
		return nil, fieldErr("(spec)", "no spec")
	}
	t := &translator{spec: spec, o: &o, r: &Result{}}
	steps := []func() error{
		t.checkNames,
		t.unsupported,
		t.base,
		t.namespaces,
		t.root,
		t.process,
		t.hostname,
		t.mounts,
		t.maskedReadonly,
		t.devices,
		t.cgroups,
		t.resources,
		t.sysctl,
		t.seccomp,
		t.hooks,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return t.r, nil
}

// checkNames checks the container name and namespace against containerd's identifier
// rules: they name the monitor's cgroup, whose separator relies on them.
func (t *translator) checkNames() error {
	if err := identifiers.Validate(t.o.Name); err != nil {
		return fieldErr("(name)", "container id: %v", err)
	}
	if err := identifiers.Validate(t.o.Namespace); err != nil {
		return fieldErr("(namespace)", "%v", err)
	}
	return nil
}

func (t *translator) unsupported() error {
	s := t.spec
	switch {
	case s.Windows != nil:
		return fieldErr("windows", "Windows containers are not supported by the lxc backend")
	case s.Solaris != nil:
		return fieldErr("solaris", "not supported by the lxc backend")
	case s.VM != nil:
		return fieldErr("vm", "virtual-machine containers are not supported by the lxc backend")
	case s.ZOS != nil:
		return fieldErr("zos", "not supported by the lxc backend")
	case s.FreeBSD != nil:
		return fieldErr("freebsd", "not supported by the lxc backend")
	case s.Domainname != "":
		return fieldErr("domainname", "LXC cannot set the NIS domain name")
	}
	if l := s.Linux; l != nil {
		switch {
		case l.IntelRdt != nil:
			return fieldErr("linux.intelRdt", "Intel RDT is not supported by the lxc backend")
		case l.MemoryPolicy != nil:
			return fieldErr("linux.memoryPolicy", "memory policies are not supported by the lxc backend")
		case len(l.NetDevices) > 0:
			return fieldErr("linux.netDevices", "moving network devices is not supported by the lxc backend")
		case l.MountLabel != "":
			return fieldErr("linux.mountLabel", "SELinux mount labels are not supported by the lxc backend")
		}
	}
	return nil
}

func (t *translator) base() error {
	for _, it := range []Item{
		{"lxc.tty.max", "0"},
		{"lxc.autodev", "1"},
		{"lxc.hook.version", "1"},
		{"lxc.signal.halt", "SIGKILL"},
		{"lxc.signal.stop", "SIGKILL"},
	} {
		if err := t.add("(base)", it.Key, it.Value); err != nil {
			return err
		}
	}
	if t.o.LogFile != "" {
		if err := t.add("(log)", "lxc.log.file", t.o.LogFile); err != nil {
			return err
		}
	}
	if t.o.LogLevel != "" {
		if err := t.add("(log)", "lxc.log.level", t.o.LogLevel); err != nil {
			return err
		}
	}
	return nil
}

var nsNames = map[specs.LinuxNamespaceType]string{
	specs.PIDNamespace:     "pid",
	specs.NetworkNamespace: "net",
	specs.MountNamespace:   "mnt",
	specs.IPCNamespace:     "ipc",
	specs.UTSNamespace:     "uts",
	specs.UserNamespace:    "user",
	specs.CgroupNamespace:  "cgroup",
	specs.TimeNamespace:    "time",
}

var nsOrder = []specs.LinuxNamespaceType{
	specs.MountNamespace, specs.PIDNamespace, specs.UTSNamespace, specs.IPCNamespace,
	specs.NetworkNamespace, specs.CgroupNamespace, specs.UserNamespace, specs.TimeNamespace,
}

func (t *translator) namespaces() error {
	t.clone = map[specs.LinuxNamespaceType]bool{}
	t.shared = map[specs.LinuxNamespaceType]string{}
	l := t.spec.Linux
	if l == nil {
		return fieldErr("linux", "missing: the lxc backend needs at least a mount namespace")
	}
	seen := map[specs.LinuxNamespaceType]bool{}
	index := map[specs.LinuxNamespaceType]int{}
	for i, ns := range l.Namespaces {
		index[ns.Type] = i
		f := fmt.Sprintf("linux.namespaces[%d]", i)
		if _, ok := nsNames[ns.Type]; !ok {
			return fieldErr(f+".type", "unknown namespace type %q", ns.Type)
		}
		if seen[ns.Type] {
			return fieldErr(f+".type", "namespace %q listed twice", ns.Type)
		}
		seen[ns.Type] = true
		if ns.Path == "" {
			t.clone[ns.Type] = true
			continue
		}
		if !path.IsAbs(ns.Path) {
			return fieldErr(f+".path", "namespace path %q is not absolute", ns.Path)
		}
		if ns.Type == specs.MountNamespace {
			return fieldErr(f+".path", "joining an existing mount namespace is not supported by LXC (it must set up the root filesystem)")
		}
		t.shared[ns.Type] = ns.Path
	}
	if !t.clone[specs.MountNamespace] {
		return fieldErr("linux.namespaces", "the lxc backend needs a new mount namespace")
	}
	var names []string
	for _, ns := range nsOrder {
		if t.clone[ns] {
			names = append(names, nsNames[ns])
		}
	}
	if err := t.add("linux.namespaces", "lxc.namespace.clone", strings.Join(names, " ")); err != nil {
		return err
	}
	for _, ns := range nsOrder {
		if p, ok := t.shared[ns]; ok {
			f := fmt.Sprintf("linux.namespaces[%d].path", index[ns])
			if err := t.add(f, "lxc.namespace.share."+nsNames[ns], p); err != nil {
				return err
			}
		}
	}
	// Network: a new network namespace gets only a loopback device; without one the
	// container shares the host's (or the joined namespace's) network.
	if t.clone[specs.NetworkNamespace] {
		if err := t.add("linux.namespaces", "lxc.net.0.type", "empty"); err != nil {
			return err
		}
	}
	// User namespace mappings.
	userns := t.clone[specs.UserNamespace] || t.shared[specs.UserNamespace] != ""
	if (len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0) && !t.clone[specs.UserNamespace] {
		if !userns {
			return fieldErr("linux.uidMappings", "id mappings need a user namespace")
		}
		return fieldErr("linux.uidMappings", "id mappings cannot be set when joining an existing user namespace")
	}
	if t.clone[specs.UserNamespace] {
		if len(l.UIDMappings) == 0 || len(l.GIDMappings) == 0 {
			return fieldErr("linux.uidMappings", "a new user namespace needs uid and gid mappings")
		}
		for i, m := range l.UIDMappings {
			if m.Size == 0 {
				return fieldErr(fmt.Sprintf("linux.uidMappings[%d].size", i), "size 0")
			}
			if err := t.add(fmt.Sprintf("linux.uidMappings[%d]", i), "lxc.idmap", fmt.Sprintf("u %d %d %d", m.ContainerID, m.HostID, m.Size)); err != nil {
				return err
			}
		}
		for i, m := range l.GIDMappings {
			if m.Size == 0 {
				return fieldErr(fmt.Sprintf("linux.gidMappings[%d].size", i), "size 0")
			}
			if err := t.add(fmt.Sprintf("linux.gidMappings[%d]", i), "lxc.idmap", fmt.Sprintf("g %d %d %d", m.ContainerID, m.HostID, m.Size)); err != nil {
				return err
			}
		}
	}
	// Time namespace offsets.
	if len(l.TimeOffsets) > 0 {
		if !t.clone[specs.TimeNamespace] {
			return fieldErr("linux.timeOffsets", "time offsets need a new time namespace")
		}
		for _, clock := range sortedKeys(l.TimeOffsets) {
			off := l.TimeOffsets[clock]
			f := keyField("linux.timeOffsets", clock)
			var key string
			switch clock {
			case "boottime":
				key = "lxc.time.offset.boot"
			case "monotonic":
				key = "lxc.time.offset.monotonic"
			default:
				return fieldErr(f, "unknown clock %q (boottime or monotonic)", clock)
			}
			if off.Nanosecs >= 1e9 {
				return fieldErr(f+".nanosecs", "%d is not below one second", off.Nanosecs)
			}
			// LXC takes one number with a unit; nanoseconds carry both parts.
			if off.Secs > math.MaxInt64/1_000_000_000-1 || off.Secs < math.MinInt64/1_000_000_000+1 {
				return fieldErr(f+".secs", "offset out of range")
			}
			ns := off.Secs*1_000_000_000 + int64(off.Nanosecs)
			if err := t.add(f, key, fmt.Sprintf("%dns", ns)); err != nil {
				return err
			}
		}
	}
	if l.Personality != nil {
		switch l.Personality.Domain {
		case specs.PerLinux:
		case specs.PerLinux32:
			if err := t.add("linux.personality.domain", "lxc.arch", "linux32"); err != nil {
				return err
			}
		default:
			return fieldErr("linux.personality.domain", "unknown personality %q", l.Personality.Domain)
		}
		if len(l.Personality.Flags) > 0 {
			return fieldErr("linux.personality.flags", "personality flags are not supported by LXC")
		}
	}
	return nil
}

func (t *translator) root() error {
	r := t.spec.Root
	if r == nil {
		return fieldErr("root", "missing")
	}
	if !path.IsAbs(t.o.Rootfs) {
		return fieldErr("root.path", "the mounted root filesystem %q is not an absolute path", t.o.Rootfs)
	}
	if err := t.add("root.path", "lxc.rootfs.path", "dir:"+t.o.Rootfs); err != nil {
		return err
	}
	if err := t.add("root.path", "lxc.rootfs.managed", "0"); err != nil {
		return err
	}
	var opts []string
	if r.Readonly {
		opts = append(opts, "ro")
	}
	if p := t.spec.Linux.RootfsPropagation; p != "" {
		switch p {
		case "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable":
			opts = append(opts, p)
		default:
			return fieldErr("linux.rootfsPropagation", "unknown propagation %q", p)
		}
	}
	if len(opts) > 0 {
		return t.add("linux.rootfsPropagation", "lxc.rootfs.options", strings.Join(opts, ","))
	}
	return nil
}

func (t *translator) hostname() error {
	h := t.spec.Hostname
	if h == "" {
		return nil
	}
	if !t.clone[specs.UTSNamespace] {
		return fieldErr("hostname", "setting the hostname needs a new uts namespace")
	}
	if strings.ContainsAny(h, " \t") {
		return fieldErr("hostname", "invalid hostname %q", h)
	}
	return t.add("hostname", "lxc.uts.name", h)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func formatInt(v int64) string { return strconv.FormatInt(v, 10) }

// errorsAs is errors.As for *FieldError.
func asFieldError(err error) (*FieldError, bool) {
	var fe *FieldError
	ok := errors.As(err, &fe)
	return fe, ok
}
