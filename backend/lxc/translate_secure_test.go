package lxc

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestTranslateSecureDefaults: what the spec leaves out is runc's default, not liblxc's.
func TestTranslateSecureDefaults(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(s *specs.Spec)
		key     string
		want    []string
		exclude string // a key that must be absent
	}{
		{"no capabilities keep none", func(s *specs.Spec) { s.Process.Capabilities = nil }, "lxc.cap.keep", []string{"none"}, ""},
		{"empty capabilities keep none", func(s *specs.Spec) { s.Process.Capabilities = &specs.LinuxCapabilities{} }, "lxc.cap.keep", []string{"none"}, ""},
		{"requested capabilities are kept", nil, "lxc.cap.keep", []string{"chown dac_override fowner fsetid kill setgid setuid setpcap net_bind_service net_raw sys_chroot mknod audit_write setfcap"}, ""},
		{"no resources deny all devices", func(s *specs.Spec) { s.Linux.Resources = nil }, "lxc.cgroup.devices.deny", []string{"a"}, ""},
		{"no device rules deny all devices", func(s *specs.Spec) { s.Linux.Resources.Devices = nil }, "lxc.cgroup.devices.deny", []string{"a"}, ""},
		{"no device rules allow runc's defaults", func(s *specs.Spec) { s.Linux.Resources.Devices = nil }, "lxc.cgroup.devices.allow", defaultDeviceRules, ""},
		{"spec rules come first", func(s *specs.Spec) {
			s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Major: ptr(int64(4)), Minor: ptr(int64(1)), Access: "r"}}
		}, "lxc.cgroup.devices.allow", append([]string{"c 4:1 r"}, defaultDeviceRules...), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := baseSpec(t)
			if c.mutate != nil {
				c.mutate(s)
			}
			r, err := Translate(s, testOptions("defaults"))
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Get(c.key); strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("%s = %q, want %q", c.key, got, c.want)
			}
			if r.Init.CapInheritable != 0 {
				t.Errorf("inheritable capabilities %#x", r.Init.CapInheritable)
			}
		})
	}
}

// TestTranslateMonitorNames: namespace and id name the monitor's cgroup unambiguously,
// and only containerd identifiers are taken.
func TestTranslateMonitorNames(t *testing.T) {
	monitor := func(ns, id string) (string, error) {
		o := testOptions("names")
		o.Namespace, o.Name = ns, id
		r, err := Translate(baseSpec(t), o)
		if err != nil {
			return "", err
		}
		return r.MonitorCgroupPath, nil
	}
	pairs := [][2][2]string{
		{{"a-b", "c"}, {"a", "b-c"}},
		{{"a.b", "c"}, {"a", "b.c"}},
		{{"a_b", "c"}, {"a", "b_c"}},
	}
	for _, p := range pairs {
		m1, err1 := monitor(p[0][0], p[0][1])
		m2, err2 := monitor(p[1][0], p[1][1])
		if err1 != nil || err2 != nil {
			t.Fatalf("%v / %v", err1, err2)
		}
		if m1 == m2 {
			t.Errorf("%s/%s and %s/%s share the monitor cgroup %s", p[0][0], p[0][1], p[1][0], p[1][1], m1)
		}
	}
	for _, c := range []struct{ ns, id, field string }{
		{"a--b", "c", "(namespace)"},
		{"", "c", "(namespace)"},
		{"default", "c--d", "(name)"},
		{"default", "-c", "(name)"},
		{"default", "c/d", "(name)"},
		{"ns\r", "c", "(namespace)"},
	} {
		_, err := monitor(c.ns, c.id)
		fe, ok := asFieldError(err)
		if !ok || fe.Field != c.field || !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("namespace %q id %q: %v, want an InvalidArgument naming %s", c.ns, c.id, err, c.field)
		}
	}
}

func errnoProfile(def specs.LinuxSeccompAction, defErrno *uint, archs ...specs.Arch) *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{DefaultAction: def, DefaultErrnoRet: defErrno, Architectures: archs}
}

// TestSeccompPolicy: rule errnos, rules equal to the default, and architectures, as runc.
func TestSeccompPolicy(t *testing.T) {
	enosys := uint(38)
	cases := []struct {
		name     string
		profile  *specs.LinuxSeccomp
		rules    []specs.LinuxSyscall
		want     []string // lines the policy must have
		wantNot  []string // lines it must not have
		errField string
	}{
		{
			name:    "errno rule without errnoRet is EPERM, not the default's errno",
			profile: errnoProfile(specs.ActErrno, &enosys),
			rules:   []specs.LinuxSyscall{{Names: []string{"mount"}, Action: specs.ActErrno}},
			want:    []string{"allowlist errno 38", "mount errno 1"},
		},
		{
			name:    "errnoRet is kept",
			profile: errnoProfile(specs.ActAllow, nil),
			rules:   []specs.LinuxSyscall{{Names: []string{"mount"}, Action: specs.ActErrno, ErrnoRet: &enosys}},
			want:    []string{"allowlist allow", "mount errno 38"},
		},
		{
			name:    "a rule equal to the default is skipped",
			profile: errnoProfile(specs.ActErrno, nil),
			rules: []specs.LinuxSyscall{
				{Names: []string{"unshare"}, Action: specs.ActErrno},
				{Names: []string{"read"}, Action: specs.ActAllow},
			},
			want:    []string{"read allow"},
			wantNot: []string{"unshare errno 1"},
		},
		{
			name:    "kill-thread equals kill",
			profile: errnoProfile(specs.ActKill, nil),
			rules:   []specs.LinuxSyscall{{Names: []string{"ptrace"}, Action: specs.ActKillThread}},
			wantNot: []string{"ptrace kill"},
		},
		{
			name:    "all of LXC's architectures: one section for all",
			profile: errnoProfile(specs.ActErrno, nil, specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64),
			rules:   []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow}},
			want:    []string{"[all]", "read allow"},
		},
		{
			name:    "some architectures: their sections only",
			profile: errnoProfile(specs.ActErrno, nil, specs.ArchX86_64),
			rules:   []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow}},
			want:    []string{"[x86_64]", "read allow"},
			wantNot: []string{"[all]", "[x86]", "[x32]"},
		},
		{
			name:     "some architectures with an allowing default: refused",
			profile:  errnoProfile(specs.ActAllow, nil, specs.ArchX86_64),
			rules:    []specs.LinuxSyscall{{Names: []string{"mount"}, Action: specs.ActErrno}},
			errField: "linux.seccomp.architectures",
		},
		{
			name:     "none of the host's architectures: refused",
			profile:  errnoProfile(specs.ActErrno, nil, specs.ArchAARCH64),
			errField: "linux.seccomp.architectures",
		},
		{
			name:     "unknown architecture: refused",
			profile:  errnoProfile(specs.ActErrno, nil, "SCMP_ARCH_PDP11"),
			errField: "linux.seccomp.architectures[0]",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.profile.Syscalls = c.rules
			policy, err := seccompPolicy(c.profile, "amd64")
			if c.errField != "" {
				fe, ok := asFieldError(err)
				if !ok || fe.Field != c.errField {
					t.Fatalf("error %v, want one naming %s", err, c.errField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lines := map[string]bool{}
			for _, l := range strings.Split(string(policy), "\n") {
				lines[l] = true
			}
			for _, l := range c.want {
				if !lines[l] {
					t.Errorf("policy lacks %q:\n%s", l, policy)
				}
			}
			for _, l := range c.wantNot {
				if lines[l] {
					t.Errorf("policy has %q:\n%s", l, policy)
				}
			}
		})
	}
}
