//go:build linux

package shim_test

import (
	"strings"
	"testing"

	"github.com/lxcri/lxcri/integration/harness"
)

// runcDefaultCapsMask is runc's default capability set, which containerd's default spec
// lists: chown dac_override fowner fsetid kill setgid setuid setpcap net_bind_service
// net_raw sys_chroot mknod audit_write setfcap.
const runcDefaultCapsMask = "00000000a80425fb"

// processStatus is what a shell in the task says about itself: its capability sets,
// no_new_privs and open-files limit, from /proc/$$ (the shell the runtime started).
const processStatus = `grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/$$/status | tr -s '\t ' ' '; grep 'Max open files' /proc/$$/limits | tr -s ' '`

// statusField is the value of the field named key (e.g. "CapEff") in a processStatus
// output.
func statusField(out, key string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, key+": "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestProxmoxLXCProcessSecurity: the task's app and its execs, attached to their PVE CT,
// run with the capabilities, no_new_privs and rlimits of their spec, as runc runs them
// (compared with containerd's runc shim in the same containerd), not with the CT's whole
// capability set and limits.
func TestProxmoxLXCProcessSecurity(t *testing.T) {
	env := startPVE(t)
	runtimes := []struct{ name, runtime string }{{"runc", harness.RuncRuntimeType}, {"proxmox-lxc", rt}}

	// app runs the status script as the app of a task of each runtime: runc's output, then proxmox-lxc's.
	type result struct{ runc, pve string }
	app := func(t *testing.T, id string, flags ...string) result {
		t.Helper()
		var got []string
		for _, r := range runtimes {
			args := append(append([]string{"run", "--rm", "--runtime", r.runtime}, flags...), env.Image, id+"-"+r.name, "sh", "-c", processStatus)
			out, errOut, code := env.Ctr(args...)
			if code != 0 {
				t.Fatalf("%s: ctr %s: exit %d %s%s", r.name, strings.Join(args, " "), code, out, errOut)
			}
			got = append(got, out)
		}
		return result{got[0], got[1]}
	}
	check := func(t *testing.T, what string, r result, want map[string]string) {
		t.Helper()
		if r.pve != r.runc {
			t.Errorf("%s: proxmox-lxc\n%s\nwhile runc gives\n%s", what, r.pve, r.runc)
		}
		for k, v := range want {
			if got := statusField(r.pve, k); got != v {
				t.Errorf("%s: %s %q, want %q (output %q)", what, k, got, v, r.pve)
			}
		}
		if !strings.Contains(r.pve, "Max open files 512 1000 files") {
			t.Errorf("%s: RLIMIT_NOFILE of the spec (512:1000) not applied: %q", what, r.pve)
		}
	}
	rootDefault := map[string]string{"CapInh": "0000000000000000", "CapPrm": runcDefaultCapsMask, "CapEff": runcDefaultCapsMask,
		"CapBnd": runcDefaultCapsMask, "CapAmb": "0000000000000000", "NoNewPrivs": "1"}

	t.Run("app", func(t *testing.T) {
		check(t, "default spec", app(t, "pve-caps", "--rlimit-nofile", "512:1000"), rootDefault)
		check(t, "allow new privileges, CAP_SYS_ADMIN added",
			app(t, "pve-caps2", "--rlimit-nofile", "512:1000", "--allow-new-privs", "--cap-add", "CAP_SYS_ADMIN"),
			map[string]string{"CapEff": "00000000a82425fb", "CapBnd": "00000000a82425fb", "NoNewPrivs": "0"})
	})

	t.Run("exec", func(t *testing.T) {
		for _, r := range runtimes {
			ctrOK(t, env.Env, "run", "-d", "--runtime", r.runtime, "--rlimit-nofile", "512:1000", env.Image, "pve-cx-"+r.name, "sleep", "1000")
			waitRunning(t, env.Env, "pve-cx-"+r.name)
			defer removeTask(t, env.Env, "pve-cx-"+r.name)
		}
		exec := func(extra ...string) result {
			var got []string
			for _, r := range runtimes {
				args := append(append([]string{"task", "exec", "--exec-id", "st"}, extra...), "pve-cx-"+r.name, "sh", "-c", processStatus)
				got = append(got, ctrOK(t, env.Env, args...))
			}
			return result{got[0], got[1]}
		}
		check(t, "exec as root", exec(), rootDefault)
		check(t, "exec as uid 1000", exec("--user", "1000"), map[string]string{"CapPrm": "0000000000000000",
			"CapEff": "0000000000000000", "CapBnd": runcDefaultCapsMask, "NoNewPrivs": "1"})
	})
	env.assertNoCT(t)
}
