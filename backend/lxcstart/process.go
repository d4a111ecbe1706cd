package lxcstart

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/runtime"
)

var fieldErr = runtime.FieldErrorf

// CapNames are the capabilities by their number; the index is the capability's bit.
var CapNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// CapMask turns capability names into a bit mask; field names the list for errors.
func CapMask(field string, names []string) (uint64, error) {
	var m uint64
	for i, n := range names {
		found := false
		for bit, c := range CapNames {
			if strings.EqualFold(n, c) {
				m |= 1 << uint(bit)
				found = true
				break
			}
		}
		if !found {
			return 0, fieldErr(fmt.Sprintf("%s[%d]", field, i), "unknown capability %q", n)
		}
	}
	return m, nil
}

// CapList names the capabilities of mask as liblxc's lxc.cap.keep takes them (lower
// case, without CAP_).
func CapList(mask uint64) []string {
	var names []string
	for bit, c := range CapNames {
		if mask&(1<<uint(bit)) != 0 {
			names = append(names, strings.ToLower(strings.TrimPrefix(c, "CAP_")))
		}
	}
	return names
}

// Caps is a process's capability sets as masks.
type Caps struct {
	Bounding, Effective, Permitted, Inheritable, Ambient uint64
}

// ParseCaps turns the spec's capability sets (at field) into masks.
func ParseCaps(field string, c *specs.LinuxCapabilities) (Caps, error) {
	var caps Caps
	var err error
	sets := []struct {
		name  string
		names []string
		dst   *uint64
	}{
		{"bounding", c.Bounding, &caps.Bounding},
		{"effective", c.Effective, &caps.Effective},
		{"permitted", c.Permitted, &caps.Permitted},
		{"inheritable", c.Inheritable, &caps.Inheritable},
		{"ambient", c.Ambient, &caps.Ambient},
	}
	for _, s := range sets {
		if *s.dst, err = CapMask(field+"."+s.name, s.names); err != nil {
			return caps, err
		}
	}
	return caps, nil
}

var rlimitNames = map[string]int{
	"RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
	"RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
	"RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
	"RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

const rlimInfinity = ^uint64(0)

// CheckRlimit validates a resource limit (at field) and returns its resource's number.
func CheckRlimit(field string, r specs.POSIXRlimit) (int, error) {
	res, ok := rlimitNames[r.Type]
	if !ok {
		return 0, fieldErr(field+".type", "unknown resource limit %q", r.Type)
	}
	if r.Soft > r.Hard {
		return 0, fieldErr(field+".soft", "soft limit %d above hard limit %d", r.Soft, r.Hard)
	}
	return res, nil
}

// RlimitValue is a limit as the helper and liblxc's lxc.prlimit take it.
func RlimitValue(v uint64) string {
	if v == rlimInfinity {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// CheckEnv validates a process environment: KEY=VALUE entries only (LXC would take a
// bare KEY to mean "inherit the host's value").
func CheckEnv(field string, env []string) error {
	for i, e := range env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			return fieldErr(fmt.Sprintf("%s[%d]", field, i), "%q is not KEY=VALUE", e)
		}
		if strings.ContainsRune(e, 0) {
			return fieldErr(fmt.Sprintf("%s[%d]", field, i), "contains NUL")
		}
	}
	return nil
}

func checkArgs(field string, args []string) error {
	if len(args) == 0 || args[0] == "" {
		return fieldErr(field, "no command given")
	}
	for i, a := range args {
		if strings.ContainsRune(a, 0) {
			return fieldErr(fmt.Sprintf("%s[%d]", field, i), "contains NUL")
		}
	}
	return nil
}

// CheckProcess validates what no process run through liblxc can have, init or exec'ed.
func CheckProcess(p *specs.Process) error {
	switch {
	case p.CommandLine != "":
		return fieldErr("process.commandLine", "Windows command lines are not supported")
	case p.User.Username != "":
		return fieldErr("process.user.username", "user names are Windows-only; give uid and gid")
	case p.Scheduler != nil:
		return fieldErr("process.scheduler", "scheduling policies are not supported")
	case p.IOPriority != nil:
		return fieldErr("process.ioPriority", "I/O priorities are not supported")
	case p.ExecCPUAffinity != nil:
		return fieldErr("process.execCPUAffinity", "CPU affinity is not supported")
	}
	if p.Cwd == "" || !path.IsAbs(p.Cwd) {
		return fieldErr("process.cwd", "%q is not an absolute path", p.Cwd)
	}
	if err := checkArgs("process.args", p.Args); err != nil {
		return err
	}
	if err := CheckEnv("process.env", p.Env); err != nil {
		return err
	}
	if p.User.Umask != nil && *p.User.Umask > 0o777 {
		return fieldErr("process.user.umask", "%#o is not a umask", *p.User.Umask)
	}
	if p.OOMScoreAdj != nil && (*p.OOMScoreAdj < -1000 || *p.OOMScoreAdj > 1000) {
		return fieldErr("process.oomScoreAdj", "%d is outside -1000..1000", *p.OOMScoreAdj)
	}
	return nil
}

// ExecSpec turns the spec of a process that lxcri-start's exec mode attaches to a running
// container into the helper's spec record: user, groups, umask, cwd, environment,
// terminal, capabilities, no_new_privs, rlimits and oom_score_adj, which the helper sets
// after the attach as runc does. Without capabilities in p the helper leaves the
// attached process's own; what it cannot honour is an error naming the field.
func ExecSpec(p *specs.Process) ([]byte, error) {
	if err := CheckProcess(p); err != nil {
		return nil, err
	}
	if p.ApparmorProfile != "" && p.ApparmorProfile != "unconfined" {
		return nil, fieldErr("process.apparmorProfile", "exec'ed processes run under the container's AppArmor profile; a profile of their own is not supported")
	}
	if p.SelinuxLabel != "" {
		return nil, fieldErr("process.selinuxLabel", "exec'ed processes run under the container's SELinux context; a label of their own is not supported")
	}
	s := NewSpec()
	s.Add("process.cwd", "cwd", p.Cwd)
	s.Add("process.user.uid", "uid", strconv.FormatUint(uint64(p.User.UID), 10))
	s.Add("process.user.gid", "gid", strconv.FormatUint(uint64(p.User.GID), 10))
	for i, g := range p.User.AdditionalGids {
		s.Add(fmt.Sprintf("process.user.additionalGids[%d]", i), "group", strconv.FormatUint(uint64(g), 10))
	}
	umask := uint32(0o022)
	if p.User.Umask != nil {
		umask = *p.User.Umask
	}
	s.Add("process.user.umask", "umask", strconv.FormatUint(uint64(umask), 8))
	for i, e := range p.Env {
		s.Add(fmt.Sprintf("process.env[%d]", i), "env", e)
	}
	if p.Terminal {
		s.Add("process.terminal", "tty", "1")
	}
	if p.NoNewPrivileges {
		s.Add("process.noNewPrivileges", "no-new-privs", "1")
	}
	if p.Capabilities != nil {
		caps, err := ParseCaps("process.capabilities", p.Capabilities)
		if err != nil {
			return nil, err
		}
		for _, s := range []struct {
			name string
			m    uint64
		}{{"effective", caps.Effective}, {"ambient", caps.Ambient}} {
			if s.m&^caps.Permitted != 0 {
				return nil, fieldErr("process.capabilities."+s.name, "%s not in the permitted set", strings.Join(CapList(s.m&^caps.Permitted), ","))
			}
		}
		if caps.Ambient&^caps.Inheritable != 0 {
			return nil, fieldErr("process.capabilities.ambient", "%s not in the inheritable set", strings.Join(CapList(caps.Ambient&^caps.Inheritable), ","))
		}
		for _, c := range []struct {
			name string
			m    uint64
		}{{"bounding", caps.Bounding}, {"effective", caps.Effective}, {"permitted", caps.Permitted}, {"inheritable", caps.Inheritable}, {"ambient", caps.Ambient}} {
			s.Add("process.capabilities."+c.name, "cap-"+c.name, strconv.FormatUint(c.m, 16))
		}
	}
	for i, r := range p.Rlimits {
		f := fmt.Sprintf("process.rlimits[%d]", i)
		res, err := CheckRlimit(f, r)
		if err != nil {
			return nil, err
		}
		s.Add(f, "rlimit", fmt.Sprintf("%d:%s:%s", res, RlimitValue(r.Soft), RlimitValue(r.Hard)))
	}
	if p.OOMScoreAdj != nil {
		s.Add("process.oomScoreAdj", "oom-score-adj", strconv.Itoa(*p.OOMScoreAdj))
	}
	for i, a := range p.Args {
		s.Add(fmt.Sprintf("process.args[%d]", i), "arg", a)
	}
	return s.Encode()
}
