package lxc

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/backend/lxcstart"
)

// execSpec turns an exec'ed process's spec into the helper's spec record (see
// backend/lxcstart). What the helper cannot honour is an error naming the field.
func execSpec(p *specs.Process) ([]byte, error) {
	if err := checkProcessCommon(p); err != nil {
		return nil, err
	}
	if p.ApparmorProfile != "" && p.ApparmorProfile != "unconfined" {
		return nil, fieldErr("process.apparmorProfile", "exec'ed processes run under the container's AppArmor profile; a profile of their own is not supported")
	}
	if p.SelinuxLabel != "" {
		return nil, fieldErr("process.selinuxLabel", "exec'ed processes run under the container's SELinux context; a label of their own is not supported")
	}
	s := lxcstart.NewSpec()
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
		caps, err := parseCaps("process.capabilities", p.Capabilities)
		if err != nil {
			return nil, err
		}
		for _, s := range []struct {
			name string
			m    uint64
		}{{"effective", caps.Effective}, {"inheritable", caps.Inheritable}, {"ambient", caps.Ambient}} {
			if s.m&^caps.Permitted != 0 && s.name != "inheritable" {
				return nil, fieldErr("process.capabilities."+s.name, "%s not in the permitted set", strings.Join(capList(s.m&^caps.Permitted), ","))
			}
		}
		if caps.Ambient&^caps.Inheritable != 0 {
			return nil, fieldErr("process.capabilities.ambient", "%s not in the inheritable set", strings.Join(capList(caps.Ambient&^caps.Inheritable), ","))
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
		res, err := checkRlimit(f, r)
		if err != nil {
			return nil, err
		}
		s.Add(f, "rlimit", fmt.Sprintf("%d:%s:%s", res, rlimitValue(r.Soft), rlimitValue(r.Hard)))
	}
	if p.OOMScoreAdj != nil {
		s.Add("process.oomScoreAdj", "oom-score-adj", strconv.Itoa(*p.OOMScoreAdj))
	}
	for i, a := range p.Args {
		s.Add(fmt.Sprintf("process.args[%d]", i), "arg", a)
	}
	return s.Encode()
}
