package lxc

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	golxc "github.com/lxc/go-lxc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// injection is a value that, written into a configuration line as it is, makes liblxc
// read a second line: a hook running a host command.
const injection = "\rlxc.hook.pre-start=/bin/touch${IFS}/tmp/x;#"

// lxcLoad writes cfg as the configuration of container "c" in a temporary lxcpath, has
// liblxc load it and save it again, and returns the items of the saved file: the lines
// liblxc parsed, in order. ok is false when liblxc refuses the configuration.
func lxcLoad(t testing.TB, dir string, cfg []byte) (items []Item, ok bool) {
	t.Helper()
	lxcpath := filepath.Join(dir, "lxc")
	if err := os.MkdirAll(filepath.Join(lxcpath, "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lxcpath, "c", "config"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := golxc.NewContainer("c", lxcpath)
	if err != nil {
		return nil, false
	}
	defer golxc.Release(c)
	saved := filepath.Join(dir, "saved")
	if err := c.SaveConfigFile(saved); err != nil {
		t.Fatalf("save configuration: %v", err)
	}
	data, err := os.ReadFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// liblxc's own reading of a line: key up to the first '=', blanks around both.
		k, v, found := strings.Cut(line, "=")
		if !found {
			t.Fatalf("saved configuration line %q is not key = value", line)
		}
		items = append(items, Item{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return items, true
}

// checkLoadsAsMeant fails unless liblxc reads exactly r's items from r's configuration:
// the same keys and values, in number and order, and so no lxc.hook.* but Translate's.
func checkLoadsAsMeant(t testing.TB, dir string, r *Result) {
	t.Helper()
	cfg, err := r.Render()
	if err != nil {
		t.Fatalf("Render of an accepted spec: %v", err)
	}
	got, ok := lxcLoad(t, dir, cfg)
	if !ok {
		return // liblxc refuses it: Create fails, nothing runs
	}
	want := r.Items()
	if len(got) != len(want) {
		t.Fatalf("liblxc read %d items, Translate meant %d:\n%s", len(got), len(want), cfg)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("item %d: liblxc read %q = %q, Translate meant %q = %q", i, got[i].Key, got[i].Value, want[i].Key, want[i].Value)
		}
	}
}

// TestTranslateInjection: a line break in any spec value reaching the configuration is
// refused (an InvalidArgument naming the field) or cannot start a line of its own.
func TestTranslateInjection(t *testing.T) {
	for _, c := range injectionCases() {
		t.Run(c.name, func(t *testing.T) {
			s := baseSpec(t)
			c.mutate(s, injection)
			dir := t.TempDir()
			r, err := Translate(s, loadOptions("inject", dir))
			if err != nil {
				fe, ok := asFieldError(err)
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !ok {
					t.Fatalf("error %v is not an InvalidArgument *FieldError", err)
				}
				if c.field != "" && fe.Field != c.field {
					t.Fatalf("error %q names %s, want %s", err, fe.Field, c.field)
				}
				if c.field == "" {
					t.Logf("refused: %v", err)
				}
				return
			}
			if c.field != "" {
				t.Errorf("accepted; want an error naming %s", c.field)
			}
			checkLoadsAsMeant(t, dir, r)
		})
	}
}

// loadOptions are testOptions whose files (the log liblxc opens on loading) are in dir.
func loadOptions(name, dir string) Options {
	o := testOptions(name)
	o.Dir = dir
	o.LogFile = filepath.Join(dir, "lxc.log")
	return o
}

type injectionCase struct {
	name   string
	field  string // the field refused; "" when the value may be accepted (it is escaped or never reaches the file)
	mutate func(s *specs.Spec, payload string)
}

// injectionCases put the injection into each spec field that reaches the configuration
// (or could be thought to).
func injectionCases() []injectionCase {
	return []injectionCase{
		{"mount destination", "mounts[6].destination", func(s *specs.Spec, p string) { s.Mounts[6].Destination = "/run" + p }},
		{"mount destination newline", "", func(s *specs.Spec, p string) { s.Mounts[6].Destination = "/run\nlxc.hook.mount=/bin/x" }},
		{"mount source", "mounts[6].source", func(s *specs.Spec, p string) {
			s.Mounts[6] = specs.Mount{Destination: "/data", Type: "bind", Source: "/srv" + p, Options: []string{"rbind"}}
		}},
		{"mount source newline", "", func(s *specs.Spec, p string) {
			s.Mounts[6] = specs.Mount{Destination: "/data", Type: "bind", Source: "/srv\nlxc.hook.mount=/bin/x", Options: []string{"rbind"}}
		}},
		{"mount type", "mounts[6].type", func(s *specs.Spec, p string) { s.Mounts[6].Type = "tmpfs" + p }},
		{"mount option", "mounts[6].options[0]", func(s *specs.Spec, p string) { s.Mounts[6].Options[0] = "size=1m" + p }},
		{"masked path", "linux.maskedPaths[0]", func(s *specs.Spec, p string) { s.Linux.MaskedPaths[0] = "/proc/acpi" + p }},
		{"readonly path", "linux.readonlyPaths[0]", func(s *specs.Spec, p string) { s.Linux.ReadonlyPaths[0] = "/proc/bus" + p }},
		{"sysctl value", `linux.sysctl.net.core.somaxconn`, func(s *specs.Spec, p string) { s.Linux.Sysctl = map[string]string{"net.core.somaxconn": "1" + p} }},
		{"sysctl key", `linux.sysctl["net.core.somaxconn` + `\rlxc.hook.pre-start=/bin/touch${IFS}/tmp/x;#"]`, func(s *specs.Spec, p string) {
			s.Linux.Sysctl = map[string]string{"net.core.somaxconn" + p: "1"}
		}},
		{"device path", "linux.devices[0].path", func(s *specs.Spec, p string) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/x" + p, Type: "c", Major: 1, Minor: 3}}
		}},
		{"hostname", "hostname", func(s *specs.Spec, p string) { s.Hostname = "h" + p }},
		{"cwd", "process.cwd", func(s *specs.Spec, p string) { s.Process.Cwd = "/" + p }},
		{"env", "", func(s *specs.Spec, p string) { s.Process.Env = append(s.Process.Env, "X=1"+p) }},
		{"args", "", func(s *specs.Spec, p string) { s.Process.Args = append(s.Process.Args, p) }},
		{"rlimit type", "process.rlimits[0].type", func(s *specs.Spec, p string) { s.Process.Rlimits[0].Type = "RLIMIT_NOFILE" + p }},
		{"apparmor profile", "process.apparmorProfile", func(s *specs.Spec, p string) { s.Process.ApparmorProfile = "p" + p }},
		{"selinux label", "process.selinuxLabel", func(s *specs.Spec, p string) { s.Process.SelinuxLabel = "l" + p }},
		{"cgroups path", "linux.cgroupsPath", func(s *specs.Spec, p string) { s.Linux.CgroupsPath = "/a" + p }},
		{"namespace path", "linux.namespaces[1].path", func(s *specs.Spec, p string) { s.Linux.Namespaces[1].Path = "/proc/1/ns/pid" + p }},
		{"seccomp name", "linux.seccomp.syscalls[0].names[0]", func(s *specs.Spec, p string) { s.Linux.Seccomp.Syscalls[0].Names[0] = "read" + p }},
		{"unified key", `linux.resources.unified["memory.max` + `\rlxc.hook.pre-start=/bin/touch${IFS}/tmp/x;#"]`, func(s *specs.Spec, p string) {
			s.Linux.Resources.Unified = map[string]string{"memory.max" + p: "1"}
		}},
		{"unified value", "linux.resources.unified.hugetlb.2MB.max", func(s *specs.Spec, p string) {
			s.Linux.Resources.Unified = map[string]string{"hugetlb.2MB.max": "1" + p}
		}},
		{"rdma device", `linux.resources.rdma["mlx` + `\rlxc.hook.pre-start=/bin/touch${IFS}/tmp/x;#"]`, func(s *specs.Spec, p string) {
			s.Linux.Resources.Rdma = map[string]specs.LinuxRdma{"mlx" + p: {HcaHandles: ptr(uint32(1))}}
		}},
		{"net_prio interface", "linux.resources.network.priorities[0]", func(s *specs.Spec, p string) {
			s.Linux.Resources.Network = &specs.LinuxNetwork{Priorities: []specs.LinuxInterfacePriority{{Name: "eth0" + p, Priority: 1}}}
		}},
		{"cpuset cpus", "linux.resources.cpu.cpus", func(s *specs.Spec, p string) { s.Linux.Resources.CPU = &specs.LinuxCPU{Cpus: "0" + p} }},
		{"hook path", "", func(s *specs.Spec, p string) { s.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "/bin/x" + p}}} }},
		{"hook args and env", "", func(s *specs.Spec, p string) {
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/x", Args: []string{"x", p}, Env: []string{"A=" + p}}}}
		}},
		{"annotation", "", func(s *specs.Spec, p string) {
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/x"}}}
			s.Annotations = map[string]string{"a" + p: p}
		}},
	}
}
