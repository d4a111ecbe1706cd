package lxc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	goruntime "runtime"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/backend/lxcstart"
)

var sysctlKeyRe = regexp.MustCompile(`^[A-Za-z0-9_-]+([./][A-Za-z0-9_:-]+)*$`)

var ipcSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

func (t *translator) hasNS(ns specs.LinuxNamespaceType) bool {
	return t.clone[ns] || t.shared[ns] != ""
}

// sysctl sets namespaced kernel parameters through the helper, as the first start-host
// hook: it joins the init's namespaces and writes the host's /proc/sys. (liblxc's own
// lxc.sysctl writes them inside the container after the mounts, when linux.readonlyPaths
// has made /proc/sys read-only; runc writes them before.)
func (t *translator) sysctl() error {
	args := []string{"sysctl"}
	for _, k := range sortedKeys(t.spec.Linux.Sysctl) {
		f := keyField("linux.sysctl", k)
		v := t.spec.Linux.Sysctl[k]
		if !sysctlKeyRe.MatchString(k) {
			return fieldErr(f, "invalid sysctl name %q", k)
		}
		key := k
		if strings.Contains(k, "/") {
			// LXC turns every dot into a slash: a name in slash form must not hold dots.
			if strings.Contains(k, ".") {
				return fieldErr(f, "LXC cannot set %q: it turns the dots of a name into slashes", k)
			}
			key = strings.ReplaceAll(k, "/", ".")
		}
		// Only namespaced sysctls: anything else would change the host (as runc checks).
		switch {
		case ipcSysctls[key] || strings.HasPrefix(key, "fs.mqueue."):
			if !t.hasNS(specs.IPCNamespace) {
				return fieldErr(f, "needs an ipc namespace")
			}
		case strings.HasPrefix(key, "net."):
			if !t.hasNS(specs.NetworkNamespace) {
				return fieldErr(f, "needs a network namespace; it would change the host's setting")
			}
		case key == "kernel.hostname" || key == "kernel.domainname":
			if !t.hasNS(specs.UTSNamespace) {
				return fieldErr(f, "needs a uts namespace")
			}
		default:
			return fieldErr(f, "%q is not namespaced: it would change the host's setting", k)
		}
		if strings.ContainsAny(v, "\x00\n\r") {
			return fieldErr(f, "value %q contains a line break or NUL", v)
		}
		if t.o.Helper == "" {
			return fieldErr(f, "setting sysctls needs the lxcri-start helper")
		}
		args = append(args, key+"="+v)
	}
	if len(args) == 1 {
		return nil
	}
	// One hook for all: the names and values are its shell-quoted arguments.
	return t.addHook("linux.sysctl", "start-host", args...)
}

var seccompOps = map[specs.LinuxSeccompOperator]bool{
	specs.OpNotEqual: true, specs.OpLessThan: true, specs.OpLessEqual: true, specs.OpEqualTo: true,
	specs.OpGreaterEqual: true, specs.OpGreaterThan: true, specs.OpMaskedEqual: true,
}

var syscallNameRe = regexp.MustCompile(`^[a-z0-9_]+$`)

const ePERM = 1

func seccompAction(field string, a specs.LinuxSeccompAction, errno *uint) (string, error) {
	switch a {
	case specs.ActAllow:
		return "allow", nil
	case specs.ActKill, specs.ActKillThread:
		return "kill", nil
	case specs.ActTrap:
		return "trap", nil
	case specs.ActErrno:
		e := uint(ePERM)
		if errno != nil {
			e = *errno
		}
		if e > 4095 {
			return "", fieldErr(field, "errno %d out of range", e)
		}
		return "errno " + strconv.FormatUint(uint64(e), 10), nil
	case specs.ActKillProcess:
		return "", fieldErr(field, "LXC's seccomp policies know no kill-process action (only kill-thread)")
	case specs.ActLog, specs.ActTrace, specs.ActNotify:
		return "", fieldErr(field, "seccomp action %s is not supported by LXC", a)
	}
	return "", fieldErr(field, "unknown seccomp action %q", a)
}

// seccompSections are LXC's policy sections for the architectures it knows by name.
var seccompSections = map[specs.Arch]string{
	specs.ArchX86: "x86", specs.ArchX86_64: "x86_64", specs.ArchX32: "x32",
	specs.ArchARM: "arm", specs.ArchAARCH64: "arm64",
	specs.ArchPPC: "ppc", specs.ArchPPC64: "ppc64", specs.ArchPPC64LE: "ppc64le",
	specs.ArchMIPS: "mips", specs.ArchMIPS64: "mips64", specs.ArchMIPS64N32: "mips64n32",
	specs.ArchMIPSEL: "mipsel", specs.ArchMIPSEL64: "mipsel64", specs.ArchMIPSEL64N32: "mipsel64n32",
	specs.ArchS390: "s390", specs.ArchS390X: "s390x",
}

// lxcSeccompContexts are the architectures liblxc 5 filters on a host of each GOARCH
// (src/lxc/seccomp.c: parse_config_v2): the native one and its compat ones, whatever
// the policy says.
var lxcSeccompContexts = map[string][]specs.Arch{
	"amd64":    {specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
	"arm64":    {specs.ArchAARCH64, specs.ArchARM},
	"ppc64le":  {specs.ArchPPC64LE},
	"s390x":    {specs.ArchS390X},
	"mips64":   {specs.ArchMIPS64, specs.ArchMIPS64N32, specs.ArchMIPS},
	"mips64le": {specs.ArchMIPSEL64, specs.ArchMIPSEL64N32, specs.ArchMIPSEL},
}

// SeccompPolicy renders an OCI seccomp configuration as an LXC (version 2) policy for
// this host's architecture.
func SeccompPolicy(s *specs.LinuxSeccomp) ([]byte, error) {
	return seccompPolicy(s, goruntime.GOARCH)
}

// seccompSectionsFor says under which policy sections the rules go. liblxc filters the
// native architecture and its compat ones (lxcSeccompContexts) in any case: rules under
// [all] apply to each of them. When the spec lists architectures, a context it leaves
// out gets no rules, only the default action, which must then deny (runc's filter would
// kill a call of an architecture it was not given).
func seccompSectionsFor(s *specs.LinuxSeccomp, goarch, def string) ([]string, error) {
	const f = "linux.seccomp.architectures"
	listed := map[specs.Arch]bool{}
	for i, a := range s.Architectures {
		if _, ok := seccompSections[a]; !ok {
			return nil, fieldErr(fmt.Sprintf("%s[%d]", f, i), "unknown architecture %q", a)
		}
		listed[a] = true
	}
	if len(s.Architectures) == 0 {
		return []string{"all"}, nil
	}
	contexts, ok := lxcSeccompContexts[goarch]
	if !ok {
		return nil, fieldErr(f, "LXC's seccomp architectures on a %s host are not known to lxcri", goarch)
	}
	var sections, missing []string
	for _, a := range contexts {
		if listed[a] {
			sections = append(sections, seccompSections[a])
		} else {
			missing = append(missing, string(a))
		}
	}
	switch {
	case len(missing) == 0:
		return []string{"all"}, nil
	case len(sections) == 0:
		return nil, fieldErr(f, "none of the architectures LXC filters on this host (%s) is listed", strings.Join(missing, ", "))
	case def == "allow":
		return nil, fieldErr(f, "LXC also filters %s on this host, which the spec leaves out: with the default action allow, their system calls would not be filtered at all", strings.Join(missing, ", "))
	}
	return sections, nil
}

func seccompPolicy(s *specs.LinuxSeccomp, goarch string) ([]byte, error) {
	const f = "linux.seccomp"
	if s.ListenerPath != "" || s.ListenerMetadata != "" {
		return nil, fieldErr(f+".listenerPath", "seccomp notification listeners are not supported by the lxc backend")
	}
	for i, fl := range s.Flags {
		return nil, fieldErr(fmt.Sprintf("%s.flags[%d]", f, i), "seccomp filter flag %s is not supported by LXC", fl)
	}
	def, err := seccompAction(f+".defaultAction", s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	if s.DefaultErrnoRet != nil && s.DefaultAction != specs.ActErrno {
		return nil, fieldErr(f+".defaultErrnoRet", "defaultErrnoRet is only valid with SCMP_ACT_ERRNO")
	}
	sections, err := seccompSectionsFor(s, goarch, def)
	if err != nil {
		return nil, err
	}
	var rules bytes.Buffer
	for i, sc := range s.Syscalls {
		sf := fmt.Sprintf("%s.syscalls[%d]", f, i)
		// A rule's errno is its own errnoRet or EPERM, never the default action's (runc).
		act, err := seccompAction(sf+".action", sc.Action, sc.ErrnoRet)
		if err != nil {
			return nil, err
		}
		if sc.ErrnoRet != nil && sc.Action != specs.ActErrno {
			return nil, fieldErr(sf+".errnoRet", "errnoRet is only valid with SCMP_ACT_ERRNO")
		}
		if len(sc.Names) == 0 {
			return nil, fieldErr(sf+".names", "no syscall names")
		}
		for j, name := range sc.Names {
			if !syscallNameRe.MatchString(name) {
				return nil, fieldErr(fmt.Sprintf("%s.names[%d]", sf, j), "invalid syscall name %q", name)
			}
		}
		groups, err := seccompArgGroups(sf, sc.Args)
		if err != nil {
			return nil, err
		}
		if act == def {
			// libseccomp refuses a rule whose action is the default one; runc skips it,
			// as it changes nothing.
			continue
		}
		for _, name := range sc.Names {
			for _, g := range groups {
				rules.WriteString(name)
				rules.WriteByte(' ')
				rules.WriteString(act)
				for _, a := range g {
					// LXC reads [index,value,op,mask] and for MASKED_EQ compares
					// (arg & mask) == value; OCI's value is the mask, valueTwo the datum.
					if a.Op == specs.OpMaskedEqual {
						fmt.Fprintf(&rules, " [%d,%d,%s,%d]", a.Index, a.ValueTwo, a.Op, a.Value)
					} else {
						fmt.Fprintf(&rules, " [%d,%d,%s]", a.Index, a.Value, a.Op)
					}
				}
				rules.WriteByte('\n')
			}
		}
	}
	var b bytes.Buffer
	b.WriteString("2\n")
	// Every rule states its action; the policy line only sets the default.
	fmt.Fprintf(&b, "allowlist %s\n", def)
	for _, sec := range sections {
		fmt.Fprintf(&b, "[%s]\n", sec)
		b.Write(rules.Bytes())
	}
	return b.Bytes(), nil
}

// seccompArgGroups checks a rule's argument conditions and groups them into libseccomp
// rules: conditions on the same argument cannot be ANDed in one rule, so like runc such a
// rule becomes one rule per condition.
func seccompArgGroups(sf string, args []specs.LinuxSeccompArg) ([][]specs.LinuxSeccompArg, error) {
	seen := map[uint]bool{}
	multi := false
	for j, a := range args {
		af := fmt.Sprintf("%s.args[%d]", sf, j)
		if a.Index > 5 {
			return nil, fieldErr(af+".index", "argument index %d above 5", a.Index)
		}
		if !seccompOps[a.Op] {
			return nil, fieldErr(af+".op", "unknown operator %q", a.Op)
		}
		if seen[a.Index] {
			multi = true
		}
		seen[a.Index] = true
	}
	if !multi {
		return [][]specs.LinuxSeccompArg{args}, nil
	}
	groups := make([][]specs.LinuxSeccompArg, len(args))
	for i, a := range args {
		groups[i] = []specs.LinuxSeccompArg{a}
	}
	return groups, nil
}

func (t *translator) seccomp() error {
	s := t.spec.Linux.Seccomp
	if s == nil {
		return nil
	}
	policy, err := SeccompPolicy(s)
	if err != nil {
		return err
	}
	p := path.Join(t.o.Dir, "seccomp.policy")
	t.r.Files = append(t.r.Files, File{Path: p, Data: policy, Mode: 0o644})
	return t.add("linux.seccomp", "lxc.seccomp.profile", p)
}

// HookFileMagic starts a hook description file (read by lxcri-start oci-hook).
const HookFileMagic = "lxcri-hook-v1"

// hookFile describes one OCI hook for lxcri-start's oci-hook mode: NUL-terminated fields
// magic, path, timeout seconds (0: none), argument count, arguments, environment count,
// environment, state JSON (with "pid":-1 for the helper to fill in).
func hookFile(h specs.Hook, state []byte) []byte {
	var b bytes.Buffer
	w := func(s string) { b.WriteString(s); b.WriteByte(0) }
	w(HookFileMagic)
	w(h.Path)
	timeout := 0
	if h.Timeout != nil {
		timeout = *h.Timeout
	}
	w(strconv.Itoa(timeout))
	args := h.Args
	if len(args) == 0 {
		args = []string{h.Path}
	}
	w(strconv.Itoa(len(args)))
	for _, a := range args {
		w(a)
	}
	w(strconv.Itoa(len(h.Env)))
	for _, e := range h.Env {
		w(e)
	}
	w(string(state))
	return b.Bytes()
}

func checkHook(f string, h specs.Hook) error {
	if !path.IsAbs(h.Path) {
		return fieldErr(f+".path", "%q is not an absolute path", h.Path)
	}
	if h.Timeout != nil && *h.Timeout <= 0 {
		return fieldErr(f+".timeout", "%d is not a positive number of seconds", *h.Timeout)
	}
	for i, a := range h.Args {
		if strings.ContainsRune(a, 0) {
			return fieldErr(fmt.Sprintf("%s.args[%d]", f, i), "contains NUL")
		}
	}
	if strings.ContainsRune(h.Path, 0) {
		return fieldErr(f+".path", "contains NUL")
	}
	return lxcstart.CheckEnv(f+".env", h.Env)
}

// HookState is the OCI state passed to hooks on stdin.
func HookState(id, bundle, status string, pid int, annotations map[string]string) []byte {
	st := specs.State{Version: specs.Version, ID: id, Status: specs.ContainerState(status), Pid: pid, Bundle: bundle, Annotations: annotations}
	b, _ := json.Marshal(st)
	return b
}

func (t *translator) hooks() error {
	h := t.spec.Hooks
	if h == nil {
		return nil
	}
	if len(h.StartContainer) > 0 {
		return fieldErr("hooks.startContainer", "LXC runs container-side hooks through the container's /bin/sh; startContainer hooks are not supported")
	}
	state := HookState(t.o.Name, t.o.Bundle, "creating", -1, t.spec.Annotations)
	kinds := []struct {
		name  string
		hooks []specs.Hook
		lxc   string
	}{
		{"prestart", h.Prestart, "start-host"},
		{"createRuntime", h.CreateRuntime, "start-host"},
		{"createContainer", h.CreateContainer, "mount"},
	}
	for _, k := range kinds {
		for i, hk := range k.hooks {
			f := fmt.Sprintf("hooks.%s[%d]", k.name, i)
			if err := checkHook(f, hk); err != nil {
				return err
			}
			if t.o.Helper == "" {
				return fieldErr(f, "running OCI hooks needs the lxcri-start helper")
			}
			p := path.Join(t.o.Dir, "hooks", fmt.Sprintf("%s-%d", k.name, i))
			t.r.Files = append(t.r.Files, File{Path: p, Data: hookFile(hk, state), Mode: 0o600})
			if err := t.addHook(f, k.lxc, "oci-hook", p); err != nil {
				return err
			}
		}
	}
	for i, hk := range h.Poststart {
		if err := checkHook(fmt.Sprintf("hooks.poststart[%d]", i), hk); err != nil {
			return err
		}
	}
	for i, hk := range h.Poststop {
		if err := checkHook(fmt.Sprintf("hooks.poststop[%d]", i), hk); err != nil {
			return err
		}
	}
	t.r.Poststart = h.Poststart
	t.r.Poststop = h.Poststop
	return nil
}
