package shim

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/lxcri/lxcri/runtime"
)

// TestReadOnlyRPCs: Connect, Pids (execs named), Stats, CloseIO and ResizePty reach the
// backend for a live task.
func TestReadOnlyRPCs(t *testing.T) {
	e := newFakeEnv(t, nil)
	must(t, e.create("c"), e.start("c", ""), e.exec("c", "x"), e.start("c", "x"))
	cr, err := e.s.Connect(e.ctx, &taskAPI.ConnectRequest{ID: "c"})
	if err != nil || cr.TaskPid == 0 || cr.ShimPid != uint32(os.Getpid()) {
		t.Errorf("connect %v %v", cr, err)
	}
	pr, err := e.s.Pids(e.ctx, &taskAPI.PidsRequest{ID: "c"})
	if err != nil || len(pr.Processes) != 2 {
		t.Fatalf("pids %v %v", pr, err)
	}
	named := 0
	for _, p := range pr.Processes {
		if p.Info == nil {
			continue
		}
		v, err := typeurl.UnmarshalAny(p.Info)
		if d, ok := v.(*options.ProcessDetails); err == nil && ok && d.ExecID == "x" {
			named++
		}
	}
	if named != 1 {
		t.Errorf("exec not named in pids %v", pr.Processes)
	}
	if _, err := e.s.Stats(e.ctx, &taskAPI.StatsRequest{ID: "c"}); err != nil {
		t.Errorf("stats: %v", err)
	}
	if _, err := e.s.CloseIO(e.ctx, &taskAPI.CloseIORequest{ID: "c", ExecID: "x", Stdin: true}); err != nil {
		t.Errorf("close io: %v", err)
	}
	if _, err := e.s.ResizePty(e.ctx, &taskAPI.ResizePtyRequest{ID: "c", Width: 80, Height: 24}); !errdefs.IsFailedPrecondition(native(err)) {
		t.Errorf("resize without a terminal: %v, want FailedPrecondition", err)
	}
	if _, err := e.s.Update(e.ctx, &taskAPI.UpdateTaskRequest{ID: "c", Resources: &anypb.Any{Value: []byte("{")}}); !errdefs.IsInvalidArgument(native(err)) {
		t.Errorf("malformed update: %v, want InvalidArgument", err)
	}
	if _, err := e.s.Exec(e.ctx, &taskAPI.ExecProcessRequest{ID: "c", ExecID: "y", Spec: protoAny([]byte(`{"args":[]}`))}); !errdefs.IsInvalidArgument(native(err)) {
		t.Errorf("exec without args: %v, want InvalidArgument", err)
	}
	if _, err := e.s.Exec(e.ctx, &taskAPI.ExecProcessRequest{ID: "c", ExecID: "y"}); !errdefs.IsInvalidArgument(native(err)) {
		t.Errorf("exec without spec: %v, want InvalidArgument", err)
	}
	if _, err := e.s.Shutdown(e.ctx, &taskAPI.ShutdownRequest{}); err != nil {
		t.Errorf("shutdown with tasks: %v", err)
	}
}

// TestRetargetCgroup: a restored container whose checkpoint's spec names the old
// container's cgroup gets its own, in the spec and the bundle's config.json.
func TestRetargetCgroup(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/lxcri/default/old", "/lxcri/default/new"},
		{"system.slice:cri:old", "system.slice:cri:new"},
		{"/pods/other", "/pods/other"},
	} {
		bundle := t.TempDir()
		spec := &specs.Spec{Linux: &specs.Linux{CgroupsPath: tc.path}}
		if err := retargetCgroup(bundle, spec, "old", "new"); err != nil {
			t.Fatal(err)
		}
		if spec.Linux.CgroupsPath != tc.want {
			t.Errorf("%s: got %s, want %s", tc.path, spec.Linux.CgroupsPath, tc.want)
		}
		if tc.path == tc.want {
			continue
		}
		var onDisk specs.Spec
		b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
		if err != nil || json.Unmarshal(b, &onDisk) != nil || onDisk.Linux.CgroupsPath != tc.want {
			t.Errorf("%s: config.json %s %v", tc.path, b, err)
		}
	}
	if err := retargetCgroup(t.TempDir(), &specs.Spec{}, "old", "new"); err != nil {
		t.Errorf("no linux section: %v", err)
	}
}

// TestGroupOf: the group annotation names the shim process; without one the id does, or
// with shim_group = "namespace" in the host file the namespace's group.
func TestGroupOf(t *testing.T) {
	for _, tc := range []struct {
		name, config, want string
		byNamespace, bad   bool
	}{
		{"no config", "", "id", false, false},
		{"no annotation", `{"annotations":{}}`, "id", false, false},
		{"sandbox", `{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}`, "pod1", false, false},
		{"explicit group wins", `{"annotations":{"io.containerd.lxcri.v2.group":"g","io.kubernetes.cri.sandbox-id":"pod1"}}`, "g", false, false},
		{"bad group", `{"annotations":{"io.containerd.lxcri.v2.group":"../x"}}`, "", false, true},
		{"malformed", `{`, "id", false, false},
		{"namespace, no config", "", namespaceGroup, true, false},
		{"namespace, no annotation", `{"annotations":{}}`, namespaceGroup, true, false},
		{"namespace, sandbox wins", `{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}`, "pod1", true, false},
		{"namespace, malformed", `{`, namespaceGroup, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.config != "" {
				os.WriteFile(filepath.Join(dir, "config.json"), []byte(tc.config), 0o644)
			}
			mode := "container"
			if tc.byNamespace {
				mode = "namespace"
			}
			cfg := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(cfg, []byte("shim_group = \""+mode+"\"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Setenv(runtime.ConfigPathEnv, cfg)
			got, err := groupOf(dir, "id")
			if tc.bad != (err != nil) || got != tc.want {
				t.Errorf("got %q %v, want %q", got, err, tc.want)
			}
		})
	}
	// A host file the shim cannot read fails the start, naming the file.
	cfg := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(cfg, []byte("shim_group = \"pod\"\n"), 0o644)
	t.Setenv(runtime.ConfigPathEnv, cfg)
	if _, err := groupOf(t.TempDir(), "id"); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "shim_group") {
		t.Errorf("bad shim_group: %v, want InvalidArgument naming it", err)
	}
}
