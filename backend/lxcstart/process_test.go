package lxcstart

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/runtime"
)

func ptr[T any](v T) *T { return &v }

// runcDefaultCaps is runc's (and containerd's default spec's) capability set.
var runcDefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

func TestExecSpec(t *testing.T) {
	base := func() *specs.Process {
		return &specs.Process{Args: []string{"/bin/sh"}, Cwd: "/"}
	}
	for _, tc := range []struct {
		name string
		edit func(*specs.Process)
		// want is the record's strings between magic and end, for a valid process
		want []string
		// errField, when set, is the field the error names
		errField string
	}{
		{
			name: "minimal: runc's umask, no capabilities of its own",
			want: []string{"cwd", "/", "uid", "0", "gid", "0", "umask", "22", "arg", "/bin/sh"},
		},
		{
			name: "every field",
			edit: func(p *specs.Process) {
				p.Args = []string{"/bin/sh", "-c", "echo $X"}
				p.Env = []string{"PATH=/bin", "X=a b\nc=d"}
				p.Cwd = "/tmp"
				p.User = specs.User{UID: 1, GID: 2, AdditionalGids: []uint32{3, 4}, Umask: ptr(uint32(0o027))}
				p.Rlimits = []specs.POSIXRlimit{
					{Type: "RLIMIT_CORE", Soft: 1 << 63, Hard: ^uint64(0) - 1},
					{Type: "RLIMIT_FSIZE", Soft: 5, Hard: ^uint64(0)},
				}
				p.Terminal, p.NoNewPrivileges, p.OOMScoreAdj = true, true, ptr(-5)
			},
			want: []string{"cwd", "/tmp", "uid", "1", "gid", "2", "group", "3", "group", "4", "umask", "27",
				"env", "PATH=/bin", "env", "X=a b\nc=d", "tty", "1", "no-new-privs", "1",
				"rlimit", "4:9223372036854775808:18446744073709551614", "rlimit", "1:5:unlimited",
				"oom-score-adj", "-5", "arg", "/bin/sh", "arg", "-c", "arg", "echo $X"},
		},
		{
			name: "runc's default capabilities",
			edit: func(p *specs.Process) {
				p.Capabilities = &specs.LinuxCapabilities{Bounding: runcDefaultCaps, Effective: runcDefaultCaps, Permitted: runcDefaultCaps}
			},
			want: []string{"cwd", "/", "uid", "0", "gid", "0", "umask", "22",
				"cap-bounding", "a80425fb", "cap-effective", "a80425fb", "cap-permitted", "a80425fb", "cap-inheritable", "0", "cap-ambient", "0",
				"arg", "/bin/sh"},
		},
		{
			name: "empty capabilities: all five sets sent, all empty",
			edit: func(p *specs.Process) { p.Capabilities = &specs.LinuxCapabilities{} },
			want: []string{"cwd", "/", "uid", "0", "gid", "0", "umask", "22",
				"cap-bounding", "0", "cap-effective", "0", "cap-permitted", "0", "cap-inheritable", "0", "cap-ambient", "0",
				"arg", "/bin/sh"},
		},
		{
			name: "ambient within permitted and inheritable; inheritable outside permitted",
			edit: func(p *specs.Process) {
				p.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Permitted: []string{"cap_kill"},
					Inheritable: []string{"CAP_KILL", "CAP_CHOWN"}, Ambient: []string{"CAP_KILL"}}
			},
			want: []string{"cwd", "/", "uid", "0", "gid", "0", "umask", "22",
				"cap-bounding", "20", "cap-effective", "0", "cap-permitted", "20", "cap-inheritable", "21", "cap-ambient", "20",
				"arg", "/bin/sh"},
		},
		{"unknown capability", func(p *specs.Process) {
			p.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL", "CAP_NOPE"}}
		}, nil, "process.capabilities.bounding[1]"},
		{"effective outside permitted", func(p *specs.Process) {
			p.Capabilities = &specs.LinuxCapabilities{Effective: []string{"CAP_KILL"}}
		}, nil, "process.capabilities.effective"},
		{"ambient outside permitted", func(p *specs.Process) {
			p.Capabilities = &specs.LinuxCapabilities{Inheritable: []string{"CAP_KILL"}, Ambient: []string{"CAP_KILL"}}
		}, nil, "process.capabilities.ambient"},
		{"ambient outside inheritable", func(p *specs.Process) {
			p.Capabilities = &specs.LinuxCapabilities{Permitted: []string{"CAP_KILL"}, Ambient: []string{"CAP_KILL"}}
		}, nil, "process.capabilities.ambient"},
		{"unknown rlimit", func(p *specs.Process) { p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOPE"}} }, nil, "process.rlimits[0].type"},
		{"soft above hard", func(p *specs.Process) {
			p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 2, Hard: 1}}
		}, nil, "process.rlimits[0].soft"},
		{"oomScoreAdj range", func(p *specs.Process) { p.OOMScoreAdj = ptr(1001) }, nil, "process.oomScoreAdj"},
		{"umask range", func(p *specs.Process) { p.User.Umask = ptr(uint32(0o1000)) }, nil, "process.user.umask"},
		{"relative cwd", func(p *specs.Process) { p.Cwd = "tmp" }, nil, "process.cwd"},
		{"no cwd", func(p *specs.Process) { p.Cwd = "" }, nil, "process.cwd"},
		{"NUL in cwd", func(p *specs.Process) { p.Cwd = "/t\x00mp" }, nil, "process.cwd"},
		{"no args", func(p *specs.Process) { p.Args = nil }, nil, "process.args"},
		{"NUL in arg", func(p *specs.Process) { p.Args = []string{"/bin/true", "a\x00b"} }, nil, "process.args[1]"},
		{"bare env key", func(p *specs.Process) { p.Env = []string{"A=1", "HOME"} }, nil, "process.env[1]"},
		{"empty env key", func(p *specs.Process) { p.Env = []string{"=x"} }, nil, "process.env[0]"},
		{"user name", func(p *specs.Process) { p.User.Username = "root" }, nil, "process.user.username"},
		{"command line", func(p *specs.Process) { p.CommandLine = "sh" }, nil, "process.commandLine"},
		{"scheduler", func(p *specs.Process) { p.Scheduler = &specs.Scheduler{Policy: "SCHED_OTHER"} }, nil, "process.scheduler"},
		{"I/O priority", func(p *specs.Process) { p.IOPriority = &specs.LinuxIOPriority{Class: "IOPRIO_CLASS_BE"} }, nil, "process.ioPriority"},
		{"CPU affinity", func(p *specs.Process) { p.ExecCPUAffinity = &specs.CPUAffinity{Final: "0"} }, nil, "process.execCPUAffinity"},
		{"AppArmor profile", func(p *specs.Process) { p.ApparmorProfile = "p" }, nil, "process.apparmorProfile"},
		{"unconfined is no profile", func(p *specs.Process) { p.ApparmorProfile = "unconfined" },
			[]string{"cwd", "/", "uid", "0", "gid", "0", "umask", "22", "arg", "/bin/sh"}, ""},
		{"SELinux label", func(p *specs.Process) { p.SelinuxLabel = "l" }, nil, "process.selinuxLabel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			if tc.edit != nil {
				tc.edit(p)
			}
			rec, err := ExecSpec(p)
			if tc.errField != "" {
				var fe *runtime.FieldError
				if !errors.As(err, &fe) || fe.Field != tc.errField || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want an InvalidArgument FieldError for %s", err, tc.errField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Split(string(rec[:len(rec)-1]), "\x00")
			want := append(append([]string{SpecMagic}, tc.want...), SpecEnd)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("record\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestCapList(t *testing.T) {
	m, err := CapMask("caps", runcDefaultCaps)
	if err != nil {
		t.Fatal(err)
	}
	got := CapList(m)
	want := []string{"chown", "dac_override", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
		"net_bind_service", "net_raw", "sys_chroot", "mknod", "audit_write", "setfcap"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CapList = %q, want %q", got, want)
	}
}
