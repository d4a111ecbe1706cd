package lxc

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/lxcri/lxcri/backend/lxcstart"
)

func (t *translator) process() error {
	p := t.spec.Process
	if p == nil {
		return fieldErr("process", "missing: the container needs an init process")
	}
	if err := lxcstart.CheckProcess(p); err != nil {
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
		if _, err := lxcstart.CheckRlimit(f, r); err != nil {
			return err
		}
		name := strings.ToLower(strings.TrimPrefix(r.Type, "RLIMIT_"))
		if err := t.add(f, "lxc.prlimit."+name, lxcstart.RlimitValue(r.Soft)+":"+lxcstart.RlimitValue(r.Hard)); err != nil {
			return err
		}
	}

	// No capabilities in the spec means none, as under runc (liblxc alone would keep all).
	var caps lxcstart.Caps
	if p.Capabilities != nil {
		var err error
		if caps, err = lxcstart.ParseCaps("process.capabilities", p.Capabilities); err != nil {
			return err
		}
	}
	// liblxc keeps the bounding set; as root the init execs with permitted = effective =
	// bounding | inheritable (the kernel's rule for root, as under runc); a non-root
	// init loses every capability at exec unless ambient, which liblxc clears.
	keep := "none"
	if names := lxcstart.CapList(caps.Bounding); len(names) > 0 {
		keep = strings.Join(names, " ")
	}
	if err := t.add("process.capabilities.bounding", "lxc.cap.keep", keep); err != nil {
		return err
	}
	if caps.Inheritable&^caps.Bounding != 0 {
		return fieldErr("process.capabilities.inheritable", "%s not in the bounding set", strings.Join(lxcstart.CapList(caps.Inheritable&^caps.Bounding), ","))
	}
	t.r.Init.CapInheritable = caps.Inheritable
	if caps.Ambient != 0 && p.User.UID != 0 {
		return fieldErr("process.capabilities.ambient", "liblxc clears ambient capabilities of a non-root init (%s)", strings.Join(lxcstart.CapList(caps.Ambient), ","))
	}
	if p.User.UID == 0 {
		for _, s := range []struct {
			name string
			m    uint64
		}{{"effective", caps.Effective}, {"permitted", caps.Permitted}, {"ambient", caps.Ambient}} {
			if s.m&^caps.Bounding != 0 {
				return fieldErr("process.capabilities."+s.name, "%s not in the bounding set", strings.Join(lxcstart.CapList(s.m&^caps.Bounding), ","))
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
