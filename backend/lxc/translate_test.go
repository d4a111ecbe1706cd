package lxc

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestTranslateGolden")

// fakeStat: paths with "missing" do not exist; known files and paths with "file" are files;
// the rest are directories.
func fakeStat(p string) (fs.FileMode, error) {
	switch {
	case strings.Contains(p, "missing"):
		return 0, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
	case strings.Contains(p, "file"), strings.HasPrefix(p, "/proc/k"), strings.HasPrefix(p, "/proc/timer"),
		strings.HasPrefix(p, "/proc/sched"), strings.HasPrefix(p, "/proc/interrupts"), strings.HasPrefix(p, "/proc/latency"),
		strings.HasPrefix(p, "/proc/sysrq"), strings.HasSuffix(p, "/etc/hosts"), strings.HasSuffix(p, "/etc/resolv.conf"),
		strings.HasSuffix(p, "/etc/hostname"), strings.HasPrefix(p, "/dev/"):
		return 0o644, nil
	}
	return fs.ModeDir | 0o755, nil
}

func testOptions(name string) Options {
	o := Options{
		Name:      "c1",
		Namespace: "default",
		Rootfs:    "/run/bundle/rootfs",
		Bundle:    "/run/bundle",
		Dir:       "/run/lxcri/default/c1",
		Helper:    "/usr/local/bin/lxcri-start",
		LogFile:   "/run/lxcri/default/c1/lxc.log",
		LogLevel:  "ERROR",
		Cgroup:    CgroupLayout{UnifiedControllers: []string{"hugetlb"}},
		Stat:      fakeStat,
	}
	if strings.Contains(name, "-v2") {
		o.Cgroup = CgroupLayout{Unified: true}
	}
	return o
}

// renderResult is the golden form of a translation.
func renderResult(r *Result, err error) []byte {
	var b bytes.Buffer
	if err != nil {
		fmt.Fprintf(&b, "== error\n%s\n", err)
		if fe, ok := asFieldError(err); ok {
			fmt.Fprintf(&b, "field: %s\n", fe.Field)
		}
		return b.Bytes()
	}
	cfg, err := r.Render()
	if err != nil {
		fmt.Fprintf(&b, "== render error\n%s\n", err)
		return b.Bytes()
	}
	b.WriteString("== config\n")
	b.Write(cfg)
	for _, mp := range r.MountPoints {
		fmt.Fprintf(&b, "== mount point %s: %s in %s (dir %v)\n", mp.Field, mp.Rel, mp.Base, mp.Dir)
	}
	b.WriteString("== init\n")
	args, _ := json.Marshal(r.Init.Args)
	env, _ := json.Marshal(r.Init.Env)
	fmt.Fprintf(&b, "args: %s\nenv: %s\numask: %#o\nterminal: %v\ncap inheritable: %#x\n", args, env, r.Init.Umask, r.Init.Terminal, r.Init.CapInheritable)
	fmt.Fprintf(&b, "== cgroups\ncontainer: %s\nmonitor: %s\npivot: %s\n", r.CgroupPath, r.MonitorCgroupPath, r.MonitorPivotPath)
	for _, h := range r.Poststart {
		fmt.Fprintf(&b, "== poststart %s %q\n", h.Path, h.Args)
	}
	for _, h := range r.Poststop {
		fmt.Fprintf(&b, "== poststop %s %q\n", h.Path, h.Args)
	}
	files := append([]File(nil), r.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		fmt.Fprintf(&b, "== file %s (%#o)\n", f.Path, f.Mode)
		b.Write(bytes.ReplaceAll(f.Data, []byte{0}, []byte("\\0")))
		if len(f.Data) > 0 && f.Data[len(f.Data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// TestTranslateGolden translates testdata/*.json and compares with testdata/*.golden
// (go test -run TestTranslateGolden -update rewrites them). A name containing -v2 is
// translated for a pure cgroup v2 host, the others for this hybrid host's layout.
func TestTranslateGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.json")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no testdata/*.json: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var spec specs.Spec
			if err := json.Unmarshal(data, &spec); err != nil {
				t.Fatal(err)
			}
			r, err := Translate(&spec, testOptions(name))
			got := renderResult(r, err)
			golden := strings.TrimSuffix(in, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("translation of %s differs from %s:\n%s", in, golden, lineDiff(string(want), string(got)))
			}
		})
	}
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, wl, gl)
		}
	}
	return b.String()
}

func baseSpec(t testing.TB) *specs.Spec {
	data, err := os.ReadFile("testdata/containerd-default.json")
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func ptr[T any](v T) *T { return &v }

// TestTranslateErrors: what LXC cannot honour is an InvalidArgument error naming the field.
func TestTranslateErrors(t *testing.T) {
	cases := []struct {
		field  string
		mutate func(s *specs.Spec)
	}{
		{"domainname", func(s *specs.Spec) { s.Domainname = "example.org" }},
		{"process", func(s *specs.Spec) { s.Process = nil }},
		{"process.args", func(s *specs.Spec) { s.Process.Args = nil }},
		{"process.cwd", func(s *specs.Spec) { s.Process.Cwd = "relative" }},
		{"process.env[1]", func(s *specs.Spec) { s.Process.Env[1] = "NOVALUE" }},
		{"process.rlimits[0].type", func(s *specs.Spec) { s.Process.Rlimits[0].Type = "RLIMIT_BOGUS" }},
		{"process.rlimits[0].soft", func(s *specs.Spec) { s.Process.Rlimits[0].Soft = 4096 }},
		{"process.capabilities.bounding[0]", func(s *specs.Spec) { s.Process.Capabilities.Bounding[0] = "CAP_BOGUS" }},
		{"process.capabilities.ambient", func(s *specs.Spec) {
			s.Process.User.UID = 1000
			s.Process.Capabilities.Ambient = []string{"CAP_NET_BIND_SERVICE"}
		}},
		{"process.capabilities.effective", func(s *specs.Spec) {
			s.Process.Capabilities.Effective = append(s.Process.Capabilities.Effective, "CAP_SYS_ADMIN")
		}},
		{"process.capabilities.inheritable", func(s *specs.Spec) { s.Process.Capabilities.Inheritable = []string{"CAP_SYS_ADMIN"} }},
		{"process.scheduler", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: "SCHED_FIFO"} }},
		{"process.ioPriority", func(s *specs.Spec) { s.Process.IOPriority = &specs.LinuxIOPriority{Class: "IOPRIO_CLASS_RT"} }},
		{"process.user.username", func(s *specs.Spec) { s.Process.User.Username = "root" }},
		{"process.oomScoreAdj", func(s *specs.Spec) { s.Process.OOMScoreAdj = ptr(2000) }},
		{"root", func(s *specs.Spec) { s.Root = nil }},
		{"hostname", func(s *specs.Spec) {
			s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}}
		}},
		{"linux.namespaces", func(s *specs.Spec) { s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.PIDNamespace}} }},
		{"linux.namespaces[0].type", func(s *specs.Spec) { s.Linux.Namespaces[0].Type = "bogus" }},
		{"linux.namespaces[3].path", func(s *specs.Spec) { s.Linux.Namespaces[3].Path = "/proc/1/ns/mnt" }},
		{"linux.uidMappings", func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		}},
		{"linux.timeOffsets", func(s *specs.Spec) { s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 1}} }},
		{"linux.personality.domain", func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: "BSD"} }},
		{"mounts[0].destination", func(s *specs.Spec) { s.Mounts[0].Destination = "proc" }},
		{"mounts[1].options[1]", func(s *specs.Spec) { s.Mounts[1].Options[1] = "rro" }},
		{"mounts[1].options[1]", func(s *specs.Spec) { s.Mounts[1].Options[1] = "rshared" }},
		{"mounts[1].options[1]", func(s *specs.Spec) { s.Mounts[1].Options[1] = "shared" }},
		{"mounts[2].uidMappings", func(s *specs.Spec) { s.Mounts[2].UIDMappings = []specs.LinuxIDMapping{{Size: 1}} }},
		{"mounts[6].options[0]", func(s *specs.Spec) {
			s.Mounts[6] = specs.Mount{Destination: "/data", Type: "bind", Source: "/srv", Options: []string{"size=10"}}
		}},
		{"mounts[6].destination", func(s *specs.Spec) {
			s.Mounts[6] = specs.Mount{Destination: "/cgroup", Type: "cgroup", Source: "cgroup"}
		}},
		{"mounts[6].options[0]", func(s *specs.Spec) { s.Mounts[6].Options[0] = "x-idmap=/proc/1/ns/user" }},
		{"mounts[6].options[0]", func(s *specs.Spec) { s.Mounts[6].Options[0] = "nooptional" }},
		{"mounts[6].options[0]", func(s *specs.Spec) { s.Mounts[6].Options[0] = "create=dir" }},
		{"mounts[6].source", func(s *specs.Spec) { s.Mounts[6].Source = "#tmpfs" }},
		{"process.apparmorProfile", func(s *specs.Spec) { s.Process.ApparmorProfile = "unchanged" }},
		{"linux.devices[0].type", func(s *specs.Spec) { s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/x", Type: "z"}} }},
		{"linux.resources.devices[0].access", func(s *specs.Spec) { s.Linux.Resources.Devices[0].Access = "rwx" }},
		{"linux.resources.memory.kernel", func(s *specs.Spec) { s.Linux.Resources.Memory = &specs.LinuxMemory{Kernel: ptr(int64(1 << 20))} }},
		{"linux.resources.memory.swap", func(s *specs.Spec) {
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: ptr(int64(2 << 20)), Swap: ptr(int64(1 << 20))}
		}},
		{"linux.resources.memory.swappiness", func(s *specs.Spec) { s.Linux.Resources.Memory = &specs.LinuxMemory{Swappiness: ptr(uint64(200))} }},
		{"linux.resources.blockIO.leafWeight", func(s *specs.Spec) { s.Linux.Resources.BlockIO = &specs.LinuxBlockIO{LeafWeight: ptr(uint16(100))} }},
		{"linux.resources.blockIO.weight", func(s *specs.Spec) { s.Linux.Resources.BlockIO = &specs.LinuxBlockIO{Weight: ptr(uint16(5000))} }},
		{"linux.resources.hugepageLimits[0].pageSize", func(s *specs.Spec) {
			s.Linux.Resources.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "2 MB"}}
		}},
		{"linux.resources.unified.memory.max", func(s *specs.Spec) { s.Linux.Resources.Unified = map[string]string{"memory.max": "1G"} }},
		{"linux.cgroupsPath", func(s *specs.Spec) { s.Linux.CgroupsPath = "system.slice:cri-containerd:c1" }},
		{"linux.cgroupsPath", func(s *specs.Spec) { s.Linux.CgroupsPath = "/../escape" }},
		{"linux.sysctl.kernel.panic", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"kernel.panic": "1"} }},
		{"linux.sysctl.net.ipv4.ip_forward", func(s *specs.Spec) {
			s.Linux.Namespaces = s.Linux.Namespaces[:4] // no network namespace
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
		}},
		{"linux.sysctl.net.core.somaxconn", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"net.core.somaxconn": "1024\n"} }},
		{"linux.seccomp.defaultAction", func(s *specs.Spec) { s.Linux.Seccomp.DefaultAction = specs.ActLog }},
		{"linux.seccomp.syscalls[0].action", func(s *specs.Spec) { s.Linux.Seccomp.Syscalls[0].Action = specs.ActKillProcess }},
		{"linux.seccomp.flags[0]", func(s *specs.Spec) { s.Linux.Seccomp.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog} }},
		{"linux.seccomp.listenerPath", func(s *specs.Spec) { s.Linux.Seccomp.ListenerPath = "/run/listener.sock" }},
		{"linux.seccomp.architectures[0]", func(s *specs.Spec) { s.Linux.Seccomp.Architectures = []specs.Arch{"SCMP_ARCH_PDP11"} }},
		{"linux.intelRdt", func(s *specs.Spec) { s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "x"} }},
		{"linux.rootfsPropagation", func(s *specs.Spec) { s.Linux.RootfsPropagation = "sideways" }},
		{"hooks.startContainer", func(s *specs.Spec) { s.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "/bin/true"}}} }},
		{"hooks.createRuntime[0].path", func(s *specs.Spec) { s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "true"}}} }},
		{"hooks.poststop[0].timeout", func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{Poststop: []specs.Hook{{Path: "/bin/true", Timeout: ptr(0)}}}
		}},
		{"windows", func(s *specs.Spec) { s.Windows = &specs.Windows{} }},
		{"vm", func(s *specs.Spec) { s.VM = &specs.VM{} }},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			s := baseSpec(t)
			c.mutate(s)
			_, err := Translate(s, testOptions("errors"))
			if err == nil {
				t.Fatalf("no error; want one naming %s", c.field)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %v is not InvalidArgument", err)
			}
			fe, ok := asFieldError(err)
			if !ok || fe.Field != c.field {
				t.Errorf("error %q names field %v, want %s", err, fe, c.field)
			}
		})
	}
}

// TestTranslateV2Errors covers what only a cgroup v2 host refuses.
func TestTranslateV2Errors(t *testing.T) {
	cases := []struct {
		field  string
		mutate func(s *specs.Spec)
	}{
		{"linux.resources.memory.kernelTCP", func(s *specs.Spec) { s.Linux.Resources.Memory = &specs.LinuxMemory{KernelTCP: ptr(int64(1))} }},
		{"linux.resources.memory.disableOOMKiller", func(s *specs.Spec) { s.Linux.Resources.Memory = &specs.LinuxMemory{DisableOOMKiller: ptr(true)} }},
		{"linux.resources.memory.swap", func(s *specs.Spec) { s.Linux.Resources.Memory = &specs.LinuxMemory{Swap: ptr(int64(1 << 20))} }},
		{"linux.resources.cpu.realtimeRuntime", func(s *specs.Spec) { s.Linux.Resources.CPU = &specs.LinuxCPU{RealtimeRuntime: ptr(int64(1000))} }},
		{"linux.resources.network", func(s *specs.Spec) { s.Linux.Resources.Network = &specs.LinuxNetwork{ClassID: ptr(uint32(1))} }},
		{"linux.resources.unified.cgroup.procs", func(s *specs.Spec) { s.Linux.Resources.Unified = map[string]string{"cgroup.procs": "1"} }},
		{"linux.resources.unified.devices.allow", func(s *specs.Spec) { s.Linux.Resources.Unified = map[string]string{"devices.allow": "a"} }},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			s := baseSpec(t)
			c.mutate(s)
			_, err := Translate(s, testOptions("errors-v2"))
			fe, ok := asFieldError(err)
			if !ok || fe.Field != c.field || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %v: want an InvalidArgument naming %s", err, c.field)
			}
		})
	}
}

// fieldRe is what an error's field looks like: a JSON path into the spec, or a
// parenthesized pseudo-field.
var fieldRe = regexp.MustCompile(`^(\([a-z ]+\)|[A-Za-z][A-Za-z0-9]*(\[[0-9]+\]|\["([^"\\]|\\.)*"\]|\.[A-Za-z0-9_][A-Za-z0-9_./:-]*)*)$`)

// FuzzTranslate: Translate never panics on any spec JSON decodes to, every error is an
// InvalidArgument *FieldError naming a field, and liblxc reads an accepted spec's
// configuration as exactly the items Translate meant.
func FuzzTranslate(f *testing.F) {
	inputs, _ := filepath.Glob("testdata/*.json")
	for _, in := range inputs {
		if data, err := os.ReadFile(in); err == nil {
			f.Add(data, false)
			f.Add(data, true)
		}
	}
	f.Add([]byte(`{}`), false)
	f.Add([]byte(`{"process":{"args":["x"],"cwd":"/"},"root":{"path":"r"},"linux":{"namespaces":[{"type":"mount"}]}}`), true)
	// Every field that reaches the configuration, plain, with a line break and with the
	// injection.
	for _, c := range injectionCases() {
		for _, payload := range []string{"x", "\nlxc.hook.mount=/bin/x", injection} {
			s := baseSpec(f)
			c.mutate(s, payload)
			data, err := json.Marshal(s)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data, false)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, v2 bool) {
		var spec specs.Spec
		if err := json.Unmarshal(data, &spec); err != nil {
			return
		}
		name := "fuzz"
		if v2 {
			name = "fuzz-v2"
		}
		dir := t.TempDir()
		r, err := Translate(&spec, loadOptions(name, dir))
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error %v is not InvalidArgument", err)
			}
			fe, ok := asFieldError(err)
			if !ok || fe.Field == "" || !fieldRe.MatchString(fe.Field) {
				t.Fatalf("error %q names no field (%+v)", err, fe)
			}
			return
		}
		if len(r.Init.Args) == 0 {
			t.Fatal("accepted a spec without process args")
		}
		// Whatever is accepted is read back by liblxc as exactly the items Translate
		// meant, so no lxc.hook.* but Translate's.
		checkLoadsAsMeant(t, dir, r)
	})
}
