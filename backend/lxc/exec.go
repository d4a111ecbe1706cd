package lxc

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// execArgs turns an exec'ed process's spec into lxcri-start exec arguments. What the
// helper cannot honour is an error naming the field.
func execArgs(name, lxcpath string, p *specs.Process) ([]string, error) {
	if err := checkProcessCommon(p); err != nil {
		return nil, err
	}
	if p.ApparmorProfile != "" && p.ApparmorProfile != "unconfined" {
		return nil, fieldErr("process.apparmorProfile", "exec'ed processes run under the container's AppArmor profile; a profile of their own is not supported")
	}
	if p.SelinuxLabel != "" {
		return nil, fieldErr("process.selinuxLabel", "exec'ed processes run under the container's SELinux context; a label of their own is not supported")
	}
	args := []string{"exec", name, lxcpath, "--cwd", p.Cwd,
		"--uid", strconv.FormatUint(uint64(p.User.UID), 10),
		"--gid", strconv.FormatUint(uint64(p.User.GID), 10)}
	if len(p.User.AdditionalGids) > 0 {
		gids := make([]string, len(p.User.AdditionalGids))
		for i, g := range p.User.AdditionalGids {
			gids[i] = strconv.FormatUint(uint64(g), 10)
		}
		args = append(args, "--groups", strings.Join(gids, ","))
	}
	umask := uint32(0o022)
	if p.User.Umask != nil {
		umask = *p.User.Umask
	}
	args = append(args, "--umask", strconv.FormatUint(uint64(umask), 8))
	for _, e := range p.Env {
		args = append(args, "--env", e)
	}
	if p.Terminal {
		args = append(args, "--tty")
	}
	if p.NoNewPrivileges {
		args = append(args, "--no-new-privs")
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
		args = append(args, "--caps", fmt.Sprintf("%x,%x,%x,%x,%x", caps.Bounding, caps.Effective, caps.Permitted, caps.Inheritable, caps.Ambient))
	}
	for i, r := range p.Rlimits {
		res, err := checkRlimit(fmt.Sprintf("process.rlimits[%d]", i), r)
		if err != nil {
			return nil, err
		}
		lim := func(v uint64) string {
			if v == rlimInfinity {
				return "-1"
			}
			return strconv.FormatUint(v, 10)
		}
		args = append(args, "--rlimit", fmt.Sprintf("%d:%s:%s", res, lim(r.Soft), lim(r.Hard)))
	}
	if p.OOMScoreAdj != nil {
		args = append(args, "--oom-score-adj", strconv.Itoa(*p.OOMScoreAdj))
	}
	args = append(args, "--")
	args = append(args, p.Args...)
	return args, nil
}
