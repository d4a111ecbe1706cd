package lxc

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// capabilities by their number; the index is the capability's bit.
var capNames = []string{
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

// capMask turns capability names into a bit mask; field names the list for errors.
func capMask(field string, names []string) (uint64, error) {
	var m uint64
	for i, n := range names {
		found := false
		for bit, c := range capNames {
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

func capList(mask uint64) []string {
	var names []string
	for bit, c := range capNames {
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

func parseCaps(field string, c *specs.LinuxCapabilities) (Caps, error) {
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
		if *s.dst, err = capMask(field+"."+s.name, s.names); err != nil {
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

func checkRlimit(field string, r specs.POSIXRlimit) (int, error) {
	res, ok := rlimitNames[r.Type]
	if !ok {
		return 0, fieldErr(field+".type", "unknown resource limit %q", r.Type)
	}
	if r.Soft > r.Hard {
		return 0, fieldErr(field+".soft", "soft limit %d above hard limit %d", r.Soft, r.Hard)
	}
	return res, nil
}

func rlimitValue(v uint64) string {
	if v == rlimInfinity {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// checkEnv validates the process environment: KEY=VALUE entries only (LXC would take a
// bare KEY to mean "inherit the host's value").
func checkEnv(field string, env []string) error {
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

// checkProcessCommon validates what LXC cannot do for any process.
func checkProcessCommon(p *specs.Process) error {
	switch {
	case p.CommandLine != "":
		return fieldErr("process.commandLine", "Windows command lines are not supported")
	case p.User.Username != "":
		return fieldErr("process.user.username", "user names are Windows-only; give uid and gid")
	case p.Scheduler != nil:
		return fieldErr("process.scheduler", "scheduling policies are not supported by the lxc backend")
	case p.IOPriority != nil:
		return fieldErr("process.ioPriority", "I/O priorities are not supported by the lxc backend")
	case p.ExecCPUAffinity != nil:
		return fieldErr("process.execCPUAffinity", "CPU affinity is not supported by the lxc backend")
	}
	if p.Cwd == "" || !path.IsAbs(p.Cwd) {
		return fieldErr("process.cwd", "%q is not an absolute path", p.Cwd)
	}
	if err := checkArgs("process.args", p.Args); err != nil {
		return err
	}
	if err := checkEnv("process.env", p.Env); err != nil {
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

func (t *translator) process() error {
	p := t.spec.Process
	if p == nil {
		return fieldErr("process", "missing: the container needs an init process")
	}
	if err := checkProcessCommon(p); err != nil {
		return err
	}
	t.r.Init.Args = append([]string(nil), p.Args...)
	t.r.Init.Env = append([]string(nil), p.Env...)
	t.r.Init.Terminal = p.Terminal
	if !p.Terminal {
		// The init's stdio is the helper's; with a terminal, liblxc's console (a pty of
		// the container's devpts, relayed to the helper's terminal) is.
		if err := t.add("process.terminal", "lxc.console.path", "none"); err != nil {
			return err
		}
	}
	t.r.Init.ConsoleSize = p.ConsoleSize
	t.r.Init.Umask = 0o022
	if p.User.Umask != nil {
		t.r.Init.Umask = *p.User.Umask
	}
	if err := t.add("process.cwd", "lxc.init.cwd", p.Cwd); err != nil {
		return err
	}
	if err := t.add("process.user.uid", "lxc.init.uid", strconv.FormatUint(uint64(p.User.UID), 10)); err != nil {
		return err
	}
	if err := t.add("process.user.gid", "lxc.init.gid", strconv.FormatUint(uint64(p.User.GID), 10)); err != nil {
		return err
	}
	if len(p.User.AdditionalGids) > 0 {
		gids := make([]string, len(p.User.AdditionalGids))
		for i, g := range p.User.AdditionalGids {
			gids[i] = strconv.FormatUint(uint64(g), 10)
		}
		if err := t.add("process.user.additionalGids", "lxc.init.groups", strings.Join(gids, ",")); err != nil {
			return err
		}
	}

	for i, r := range p.Rlimits {
		f := fmt.Sprintf("process.rlimits[%d]", i)
		if _, err := checkRlimit(f, r); err != nil {
			return err
		}
		name := strings.ToLower(strings.TrimPrefix(r.Type, "RLIMIT_"))
		if err := t.add(f, "lxc.prlimit."+name, rlimitValue(r.Soft)+":"+rlimitValue(r.Hard)); err != nil {
			return err
		}
	}

	// No capabilities in the spec means none, as under runc (liblxc alone would keep all).
	var caps Caps
	if p.Capabilities != nil {
		var err error
		if caps, err = parseCaps("process.capabilities", p.Capabilities); err != nil {
			return err
		}
	}
	// liblxc keeps the bounding set; as root the init execs with permitted = effective =
	// bounding | inheritable (the kernel's rule for root, as under runc); a non-root
	// init loses every capability at exec unless ambient, which liblxc clears.
	keep := "none"
	if names := capList(caps.Bounding); len(names) > 0 {
		keep = strings.Join(names, " ")
	}
	if err := t.add("process.capabilities.bounding", "lxc.cap.keep", keep); err != nil {
		return err
	}
	if caps.Inheritable&^caps.Bounding != 0 {
		return fieldErr("process.capabilities.inheritable", "%s not in the bounding set", strings.Join(capList(caps.Inheritable&^caps.Bounding), ","))
	}
	t.r.Init.CapInheritable = caps.Inheritable
	if caps.Ambient != 0 && p.User.UID != 0 {
		return fieldErr("process.capabilities.ambient", "liblxc clears ambient capabilities of a non-root init (%s)", strings.Join(capList(caps.Ambient), ","))
	}
	if p.User.UID == 0 {
		for _, s := range []struct {
			name string
			m    uint64
		}{{"effective", caps.Effective}, {"permitted", caps.Permitted}, {"ambient", caps.Ambient}} {
			if s.m&^caps.Bounding != 0 {
				return fieldErr("process.capabilities."+s.name, "%s not in the bounding set", strings.Join(capList(s.m&^caps.Bounding), ","))
			}
		}
	}
	if p.NoNewPrivileges {
		if err := t.add("process.noNewPrivileges", "lxc.no_new_privs", "1"); err != nil {
			return err
		}
	}
	if p.OOMScoreAdj != nil {
		if err := t.add("process.oomScoreAdj", "lxc.proc.oom_score_adj", strconv.Itoa(*p.OOMScoreAdj)); err != nil {
			return err
		}
	}
	profile := p.ApparmorProfile
	switch profile {
	case "":
		profile = "unconfined"
	case "unchanged", "generated":
		// liblxc's keywords: keep the monitor's profile, or generate one.
		return fieldErr("process.apparmorProfile", "%q is a keyword of LXC, not a profile name", profile)
	}
	if err := t.add("process.apparmorProfile", "lxc.apparmor.profile", profile); err != nil {
		return err
	}
	if p.SelinuxLabel != "" {
		if err := t.add("process.selinuxLabel", "lxc.selinux.context", p.SelinuxLabel); err != nil {
			return err
		}
	}
	return nil
}
