package shim

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestShimCgroupOption(t *testing.T) {
	for _, tc := range []struct {
		name string
		ext  []any
		want string
	}{
		{"no options", nil, ""},
		{"runc options", []any{&options.Options{ShimCgroup: "/pods/shim"}}, "/pods/shim"},
		{"runc options without cgroup", []any{&options.Options{BinaryName: "runc"}}, ""},
		{"lxcri options", []any{&runtimeoptions.Options{ConfigBody: []byte(`backend = "lxc"`)}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &bootapi.BootstrapParams{}
			for _, e := range tc.ext {
				switch m := e.(type) {
				case *options.Options:
					p.AddExtension(m)
				case *runtimeoptions.Options:
					p.AddExtension(m)
				}
			}
			got, err := shimCgroup(p)
			if err != nil || got != tc.want {
				t.Errorf("got %q %v, want %q", got, err, tc.want)
			}
		})
	}
}

// TestJoinCgroup: a process is moved into the shim cgroup, on whichever cgroup version the
// host has; a cgroup that does not exist is an error naming it.
func TestJoinCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (cgroups)")
	}
	path := fmt.Sprintf("/lxcri-test-shimcg-%d", os.Getpid())
	var cleanup func() error
	if cgroups.Mode() == cgroups.Unified {
		m, err := cgroup2.NewManager("/sys/fs/cgroup", path, &cgroup2.Resources{})
		if err != nil {
			t.Fatal(err)
		}
		cleanup = m.Delete
	} else {
		cg, err := cgroup1.New(cgroup1.StaticPath(path), &specs.LinuxResources{})
		if err != nil {
			t.Fatal(err)
		}
		cleanup = cg.Delete
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	if err := joinCgroup(path, cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), ":"+path+"\n") {
		t.Errorf("process not in %s:\n%s", path, b)
	}
	err = joinCgroup(path+"-missing/x", cmd.Process.Pid)
	if err == nil || !strings.Contains(err.Error(), path+"-missing/x") {
		t.Errorf("missing cgroup: %v", err)
	}
	if cgroups.Mode() != cgroups.Unified && !errdefs.IsFailedPrecondition(err) {
		t.Errorf("missing cgroup: %v, want FailedPrecondition", err)
	}
}
