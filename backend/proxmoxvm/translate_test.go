package proxmoxvm

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/proxmox/pvesim"
	"github.com/lxcri/lxcri/runtime"
)

func i64(v int64) *int64   { return &v }
func u64(v uint64) *uint64 { return &v }

func TestTranslateMapsTheSpec(t *testing.T) {
	s := defaultSpec(t,
		oci.WithProcessArgs("/bin/app", "-x"), oci.WithEnv([]string{"A=1"}), oci.WithProcessCwd("/srv"),
		oci.WithUIDGID(1000, 1001), oci.WithHostname("web-1"), oci.WithMemoryLimit(300<<20),
		oci.WithCPUCFS(150000, 100000), oci.WithCPUShares(512))
	vs, err := Translate(s)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"name": "web-1", "memory": int64(300), "cores": 2, "cpulimit": 1.5, "cpuunits": uint64(512)}
	for k, v := range want {
		if vs.Options[k] != v {
			t.Errorf("option %s = %#v, want %#v", k, vs.Options[k], v)
		}
	}
	p := vs.Process
	def := s.Process.Capabilities
	if c := p.Capabilities; c == nil || !slices.Equal(c.Bounding, def.Bounding) || !slices.Equal(c.Effective, def.Effective) || !slices.Equal(c.Permitted, def.Permitted) || len(def.Bounding) == 0 {
		t.Errorf("capabilities %+v, want the spec's %+v", p.Capabilities, def)
	}
	if !p.NoNewPrivileges || len(p.Rlimits) != 1 || p.Rlimits[0].Type != "RLIMIT_NOFILE" || p.Rlimits[0].Hard != s.Process.Rlimits[0].Hard {
		t.Errorf("noNewPrivileges %v, rlimits %+v, want the spec's %v", p.NoNewPrivileges, p.Rlimits, s.Process.Rlimits)
	}
	if strings.Join(p.Args, " ") != "/bin/app -x" || p.Cwd != "/srv" || p.UID != 1000 || p.GID != 1001 || p.Root != guestRootfs || !strings.Contains(strings.Join(p.Env, " "), "A=1") {
		t.Errorf("process %+v", p)
	}
}

// What a VM cannot honour is InvalidArgument naming the field.
func TestTranslateRefuses(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*specs.Spec)
	}{
		{"process.terminal", func(s *specs.Spec) { s.Process.Terminal = true }},
		{"process.args", func(s *specs.Spec) { s.Process.Args = nil }},
		{"process.env[0]", func(s *specs.Spec) { s.Process.Env = []string{"NOEQUALS"} }},
		{"process.cwd", func(s *specs.Spec) { s.Process.Cwd = "relative" }},
		{"process.rlimits[1].type", func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_CORE", Hard: 1, Soft: 1}, {Type: "RLIMIT_BOGUS", Hard: 1, Soft: 1}}
		}},
		{"process.rlimits[0].soft", func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1, Soft: 2}}
		}},
		{"process.capabilities.bounding[1]", func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = []string{"CAP_CHOWN", "CAP_NOPE"}
		}},
		{"process.capabilities.ambient[0]", func(s *specs.Spec) { s.Process.Capabilities.Ambient = []string{"chown"} }},
		{"process.apparmorProfile", func(s *specs.Spec) { s.Process.ApparmorProfile = "x" }},
		{"hostname", func(s *specs.Spec) { s.Hostname = "bad_name" }},
		{"mounts[0]", func(s *specs.Spec) {
			s.Mounts = append([]specs.Mount{{Destination: "/data", Type: "bind", Source: "/srv"}}, s.Mounts...)
		}},
		{"hooks", func(s *specs.Spec) { s.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "/bin/true"}}} }},
		{"linux.sysctl", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"} }},
		{"linux.devices[0]", func(s *specs.Spec) { s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c"}} }},
		{"linux.resources.memory.reservation", func(s *specs.Spec) {
			s.Linux.Resources.Memory = &specs.LinuxMemory{Reservation: i64(64 << 20)}
		}},
		{"linux.resources.memory.limit", func(s *specs.Spec) { s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64(1 << 20)} }},
		{"linux.resources.cpu.cpus", func(s *specs.Spec) { s.Linux.Resources.CPU = &specs.LinuxCPU{Cpus: "0-1"} }},
		{"linux.resources.pids.limit", func(s *specs.Spec) { s.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64(10)} }},
		{"linux.uidMappings", func(s *specs.Spec) { s.Linux.UIDMappings = []specs.LinuxIDMapping{{Size: 1}} }},
		{"linux.namespaces[0].path", func(s *specs.Spec) {
			s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "/proc/1/ns/net"}}
		}},
	} {
		t.Run(tc.field, func(t *testing.T) {
			s := defaultSpec(t, oci.WithProcessArgs("/bin/true"))
			tc.edit(s)
			_, err := Translate(s)
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("got %v, want InvalidArgument naming %s", err, tc.field)
			}
		})
	}
	// containerd's default spec passes as it is
	if _, err := Translate(defaultSpec(t, oci.WithProcessArgs("/bin/true"), oci.WithDefaultUnixDevices)); err != nil {
		t.Errorf("default spec: %v", err)
	}
	_ = u64
}

func TestSettings(t *testing.T) {
	for _, tc := range []struct {
		cfg   runtime.ProxmoxVMConfig
		field string
	}{
		{runtime.ProxmoxVMConfig{}, "proxmox-vm.template_vmid"},
		{runtime.ProxmoxVMConfig{TemplateVMID: 9000, Memory: 8}, "proxmox-vm.memory"},
		{runtime.ProxmoxVMConfig{TemplateVMID: 9000, Cores: 500}, "proxmox-vm.cores"},
		{runtime.ProxmoxVMConfig{TemplateVMID: 9000, AgentTimeout: "soon"}, "proxmox-vm.agent_timeout"},
	} {
		if _, err := parseSettings(tc.cfg); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: %v, want InvalidArgument naming %s", tc.cfg, err, tc.field)
		}
	}
	s, err := parseSettings(runtime.ProxmoxVMConfig{TemplateVMID: 9000, FullClone: true, Memory: 256, Cores: 2, AgentTimeout: "30s"})
	if err != nil || !s.full || s.memory != 256 || s.cores != 2 || s.agentTimeout.Seconds() != 30 {
		t.Errorf("settings %+v %v", s, err)
	}
}

// A template that does not exist or has no agent is refused before anything is cloned.
func TestBadTemplate(t *testing.T) {
	ctx := context.Background()
	e, err := newTestEnv(t, func(c *runtime.Config) { c.ProxmoxVM.TemplateVMID = 4242 })
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.create(t, "c1", defaultSpec(t, oci.WithProcessArgs("/bin/true")), "")
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "template_vmid 4242: no such VM") {
		t.Errorf("missing template: %v", err)
	}
	e, err = newTestEnv(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.b.api.SetVMConfig(ctx, pvesim.TemplateVMID, map[string]any{"agent": "0"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.create(t, "c1", defaultSpec(t, oci.WithProcessArgs("/bin/true")), "")
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "has no QEMU guest agent enabled") {
		t.Errorf("template without agent: %v", err)
	}
	if ids := e.vms(t); len(ids) != 0 {
		t.Errorf("VMs %v after refused creates", ids)
	}
}
