package proxmoxlxc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/runtime"
)

// defaultSpec is what `ctr run` sends for an image without config: containerd's default.
func defaultSpec(t *testing.T, opts ...oci.SpecOpts) *specs.Spec {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "test")
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "c1"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func i64(v int64) *int64   { return &v }
func u64(v uint64) *uint64 { return &v }
func boolp(v bool) *bool   { return &v }

func TestTranslateMapsTheSpec(t *testing.T) {
	s := defaultSpec(t,
		oci.WithDefaultUnixDevices,
		oci.WithProcessArgs("/bin/sh", "-c", "echo 'hi there'"),
		oci.WithEnv([]string{"A=1", "B=two words"}),
		oci.WithProcessCwd("/srv"),
		oci.WithUIDGID(1000, 1000),
		oci.WithHostname("web-1"),
		oci.WithMemoryLimit(256<<20),
		oci.WithCPUShares(512),
		oci.WithCPUCFS(150000, 100000),
	)
	ct, err := Translate(s)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"hostname": "web-1",
		"memory":   int64(256),
		"swap":     int64(0),
		"cpuunits": 512,
		"cpulimit": "1.5",
		"cores":    2,
	}
	if !reflect.DeepEqual(ct.Options, want) {
		t.Errorf("options\n got %#v\nwant %#v", ct.Options, want)
	}
}

func TestTranslateRefuses(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*specs.Spec)
	}{
		{"hostname", func(s *specs.Spec) { s.Hostname = "bad_host" }},
		{"process.args", func(s *specs.Spec) { s.Process.Args = nil }},
		{"process.args[1]", func(s *specs.Spec) { s.Process.Args = []string{"sh", "a\x00b"} }},
		{"process.env[0]", func(s *specs.Spec) { s.Process.Env = []string{"NOEQUALS"} }},
		{"process.env[0]", func(s *specs.Spec) { s.Process.Env = []string{"A=\x00"} }},
		{"process.cwd", func(s *specs.Spec) { s.Process.Cwd = "relative" }},
		{"process.cwd", func(s *specs.Spec) { s.Process.Cwd = "" }},
		{"process.rlimits[0].type", func(s *specs.Spec) { s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOPE", Hard: 5, Soft: 5}} }},
		{"process.rlimits[0].soft", func(s *specs.Spec) { s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NPROC", Hard: 5, Soft: 6}} }},
		{"process.oomScoreAdj", func(s *specs.Spec) { v := 1001; s.Process.OOMScoreAdj = &v }},
		{"process.capabilities.bounding[0]", func(s *specs.Spec) { s.Process.Capabilities.Bounding = []string{"CAP_NOPE"} }},
		{"process.capabilities.effective", func(s *specs.Spec) {
			s.Process.Capabilities.Effective = append(s.Process.Capabilities.Effective, "CAP_SYS_ADMIN")
		}},
		{"process.apparmorProfile", func(s *specs.Spec) { s.Process.ApparmorProfile = "x" }},
		{"process.selinuxLabel", func(s *specs.Spec) { s.Process.SelinuxLabel = "x" }},
		{"process.scheduler", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: "SCHED_OTHER"} }},
		{"mounts[7]", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: "/srv", Options: []string{"rbind"}})
		}},
		{"hooks", func(s *specs.Spec) { s.Hooks = &specs.Hooks{Poststop: []specs.Hook{{Path: "/bin/true"}}} }},
		{"linux.uidMappings", func(s *specs.Spec) { s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 1, Size: 1}} }},
		{"linux.namespaces[0].path", func(s *specs.Spec) { s.Linux.Namespaces[0].Path = "/proc/1/ns/pid" }},
		{"linux.sysctl", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"} }},
		{"linux.devices[0]", func(s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}}
		}},
		{"linux.resources.devices[1]", func(s *specs.Spec) {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: i64(8), Minor: i64(0), Access: "rwm"})
		}},
		{"linux.resources.memory.limit", func(s *specs.Spec) { s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64(100*mib + 1)} }},
		{"linux.resources.memory.swap", func(s *specs.Spec) {
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64(64 * mib), Swap: i64(-1)}
		}},
		{"linux.resources.memory.swap", func(s *specs.Spec) {
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64(64 * mib), Swap: i64(32 * mib)}
		}},
		{"linux.resources.memory.reservation", func(s *specs.Spec) { s.Linux.Resources.Memory = &specs.LinuxMemory{Reservation: i64(64 * mib)} }},
		{"linux.resources.memory.swappiness", func(s *specs.Spec) { s.Linux.Resources.Memory = &specs.LinuxMemory{Swappiness: u64(10)} }},
		{"linux.resources.memory.disableOOMKiller", func(s *specs.Spec) { s.Linux.Resources.Memory = &specs.LinuxMemory{DisableOOMKiller: boolp(true)} }},
		{"linux.resources.cpu.cpus", func(s *specs.Spec) { s.Linux.Resources.CPU = &specs.LinuxCPU{Cpus: "0-1"} }},
		{"linux.resources.cpu.quota", func(s *specs.Spec) { s.Linux.Resources.CPU = &specs.LinuxCPU{Quota: i64(12345), Period: u64(100000)} }},
		{"linux.resources.cpu.shares", func(s *specs.Spec) { s.Linux.Resources.CPU = &specs.LinuxCPU{Shares: u64(300000)} }},
		{"linux.resources.pids.limit", func(s *specs.Spec) { s.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64(100)} }},
		{"linux.resources.blockIO", func(s *specs.Spec) { s.Linux.Resources.BlockIO = &specs.LinuxBlockIO{} }},
		{"linux.resources.hugepageLimits", func(s *specs.Spec) {
			s.Linux.Resources.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1}}
		}},
		{"linux.resources.unified", func(s *specs.Spec) { s.Linux.Resources.Unified = map[string]string{"memory.high": "1"} }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			s := defaultSpec(t, oci.WithProcessArgs("/bin/true"))
			tc.edit(s)
			_, err := Translate(s)
			var fe *runtime.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error %v, want InvalidArgument naming %s", err, tc.field)
			}
		})
	}
}

// criSpec is a CRI container's spec as containerd makes it for a pod on the node's
// network: the pod's files bound in, the pod's shared memory, the sandbox's namespaces.
func criSpec(t *testing.T, dir string) *specs.Spec {
	t.Helper()
	s := defaultSpec(t, oci.WithProcessArgs("sleep", "1"), oci.WithAnnotations(map[string]string{criContainerType: criContainer}))
	for _, name := range []string{"hosts", "resolv.conf", "hostname"} {
		content := "x\n"
		if name == "hostname" {
			content = "pod-host\n"
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		opts := []string{"rbind", "rprivate", "rw"}
		if name == "resolv.conf" {
			opts = []string{"rbind", "rprivate", "ro"}
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/etc/" + name, Type: "bind", Source: filepath.Join(dir, name), Options: opts})
	}
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/dev/shm", Type: "bind", Source: filepath.Join(dir, "shm"), Options: []string{"rbind", "ro"}})
	s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.PIDNamespace, Path: "/proc/1/ns/pid"}, {Type: specs.IPCNamespace, Path: "/proc/1/ns/ipc"}, {Type: specs.MountNamespace}}
	adj := -997
	s.Process.OOMScoreAdj = &adj
	return s
}

func TestTranslateCRIContainer(t *testing.T) {
	dir := t.TempDir()
	ct, err := Translate(criSpec(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	n := len(defaultSpec(t).Mounts)
	want := []PodFile{
		{Field: fmt.Sprintf("mounts[%d]", n), Dest: "/etc/hosts", Source: filepath.Join(dir, "hosts")},
		{Field: fmt.Sprintf("mounts[%d]", n+1), Dest: "/etc/resolv.conf", Source: filepath.Join(dir, "resolv.conf"), ReadOnly: true},
		{Field: fmt.Sprintf("mounts[%d]", n+2), Dest: "/etc/hostname", Source: filepath.Join(dir, "hostname")},
	}
	if !reflect.DeepEqual(ct.Files, want) {
		t.Errorf("files\n got %+v\nwant %+v", ct.Files, want)
	}
	if ct.Options["hostname"] != "pod-host" {
		t.Errorf("hostname option %v, want the pod's file's", ct.Options["hostname"])
	}

	for _, tc := range []struct {
		name, field, text string
		edit              func(*specs.Spec)
	}{
		{"host path", fmt.Sprintf("mounts[%d]", n+4), "root@pam", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: dir, Options: []string{"rbind"}})
		}},
		{"relative source", fmt.Sprintf("mounts[%d].source", n), "absolute", func(s *specs.Spec) { s.Mounts[n].Source = "hosts" }},
		{"bad hostname file", fmt.Sprintf("mounts[%d]", n+2), "DNS name", func(s *specs.Spec) {
			os.WriteFile(filepath.Join(dir, "hostname"), []byte("bad_host\n"), 0o644)
		}},
		{"namespace path outside CRI", "linux.namespaces[0].path", "namespace", func(s *specs.Spec) { delete(s.Annotations, criContainerType) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := criSpec(t, dir)
			tc.edit(s)
			_, err := Translate(s)
			var fe *runtime.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %v, want InvalidArgument naming %s and saying %q", err, tc.field, tc.text)
			}
		})
	}
}

// What lxcri-start's exec mode sets on the attached init is taken, not refused.
func TestTranslateTakesProcessSettings(t *testing.T) {
	s := defaultSpec(t, oci.WithProcessArgs("/bin/true"), oci.WithAddedCapabilities([]string{"CAP_SYS_ADMIN"}))
	adj := 500
	s.Process.NoNewPrivileges, s.Process.OOMScoreAdj = true, &adj
	s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_NPROC", Soft: 50, Hard: 100})
	s.Process.User.AdditionalGids = []uint32{10}
	if _, err := Translate(s); err != nil {
		t.Fatal(err)
	}
}
