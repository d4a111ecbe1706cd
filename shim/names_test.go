package shim

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/fake"
)

// badNames escape a folder, hold a separator, are too long for containerd (76 characters
// at most) or hold a doubled separator, which composed names ("<ns>--<id>") rely on.
var badNames = []struct{ name, value string }{
	{"parent", "../x"},
	{"dot-dot", ".."},
	{"slash", "a/b"},
	{"empty", ""},
	{"77 characters", strings.Repeat("a", 77)},
	{"double dash", "a--b"},
	{"NUL", "a\x00b"},
	{"newline", "a\nb"},
	{"leading dash", "-a"},
}

func TestValidName(t *testing.T) {
	for _, tc := range badNames {
		t.Run(tc.name, func(t *testing.T) {
			err := validName("task id", tc.value)
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "task id") {
				t.Errorf("validName(%q) = %v, want InvalidArgument naming the task id", tc.value, err)
			}
		})
	}
	for _, good := range []string{"a", "a.b_c-d", "0", strings.Repeat("a", 76), "k8s.io", "default"} {
		if err := validName("task id", good); err != nil {
			t.Errorf("validName(%q) = %v, want nil", good, err)
		}
	}
}

// TestServiceRefusesBadNames: the task service refuses a bad namespace, task id or exec id
// as InvalidArgument naming it, before it makes anything.
func TestServiceRefusesBadNames(t *testing.T) {
	s, ctx, _, _, state := newFakeService(t, "")
	bundle := writeBundle(t, &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}, Root: &specs.Root{Path: "rootfs"}})
	if _, err := s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "good", Bundle: bundle}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Delete(ctx, &taskAPI.DeleteRequest{ID: "good"}) })
	spec, _ := json.Marshal(&specs.Process{Args: []string{"true"}})
	for _, tc := range badNames {
		t.Run(tc.name, func(t *testing.T) {
			for _, call := range []struct {
				what string
				do   func() error
			}{
				{"task id", func() error {
					_, err := s.Create(ctx, &taskAPI.CreateTaskRequest{ID: tc.value, Bundle: writeBundle(t, &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}})})
					return err
				}},
				{"namespace", func() error {
					nctx := namespaces.WithNamespace(ctx, tc.value)
					_, err := s.Create(nctx, &taskAPI.CreateTaskRequest{ID: "other", Bundle: writeBundle(t, &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}})})
					return err
				}},
				{"exec id", func() error {
					_, err := s.Exec(ctx, &taskAPI.ExecProcessRequest{ID: "good", ExecID: tc.value, Spec: protoAny(spec)})
					return err
				}},
				{"task id", func() error {
					_, err := s.Delete(ctx, &taskAPI.DeleteRequest{ID: tc.value})
					return err
				}},
				{"task id", func() error {
					_, err := s.Kill(ctx, &taskAPI.KillRequest{ID: tc.value, Signal: 9})
					return err
				}},
			} {
				err := errgrpc.ToNative(call.do())
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), call.what) {
					t.Errorf("%s %q: got %v, want InvalidArgument naming the %s", call.what, tc.value, err, call.what)
				}
			}
		})
	}
	entries, _ := os.ReadDir(filepath.Join(state, "unit"))
	if len(entries) != 1 || entries[0].Name() != "good" {
		t.Errorf("state folder holds %v, want only good", entries)
	}
	if entries, _ := os.ReadDir(state); len(entries) != 1 {
		t.Errorf("state root holds %v, want only the namespace unit", entries)
	}
}

// TestManagerRefusesBadNames: the shim manager's start and crash cleanup refuse a bad
// namespace or id before they make or remove anything.
func TestManagerRefusesBadNames(t *testing.T) {
	t.Chdir(t.TempDir())
	m := NewManager(Registry{})
	sockets := t.TempDir()
	for _, tc := range badNames {
		t.Run(tc.name, func(t *testing.T) {
			ctx := namespaces.WithNamespace(context.Background(), "unit")
			_, err := m.Start(ctx, &bootapi.BootstrapParams{InstanceID: tc.value, SocketDir: &sockets, ContainerdGrpcAddress: "/nonexistent.sock"})
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "task id") {
				t.Errorf("start of id %q: got %v, want InvalidArgument naming the task id", tc.value, err)
			}
			_, err = m.Stop(ctx, tc.value)
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "task id") {
				t.Errorf("delete of id %q: got %v, want InvalidArgument naming the task id", tc.value, err)
			}
			nctx := namespaces.WithNamespace(context.Background(), tc.value)
			_, err = m.Stop(nctx, "c1")
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "namespace") {
				t.Errorf("delete in namespace %q: got %v, want InvalidArgument naming the namespace", tc.value, err)
			}
		})
	}
	if entries, _ := os.ReadDir(sockets); len(entries) > 0 {
		t.Errorf("refused starts left sockets: %v", entries)
	}
}

// TestCrashCleanupStateDir: the crash cleanup removes <state_dir>/<ns>/<id>, whatever
// state folder the bundle's record names.
func TestCrashCleanupStateDir(t *testing.T) {
	root := t.TempDir()
	victim := t.TempDir()
	own := filepath.Join(root, "unit", "c1")
	if err := os.MkdirAll(own, 0o700); err != nil {
		t.Fatal(err)
	}
	bundle := t.TempDir()
	t.Chdir(bundle)
	cfg := runtime.DefaultConfig()
	cfg.StateDir = root
	if err := writeRecord(bundle, &record{Backend: "lxc", StateDir: victim, Config: cfg}); err != nil {
		t.Fatal(err)
	}
	fb := fake.New(&fake.Log{})
	m := NewManager(Registry{"lxc": func(context.Context, *runtime.Config) (runtime.Backend, error) { return fb, nil }})
	if _, err := m.Stop(namespaces.WithNamespace(context.Background(), "unit"), "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("the folder the record named was removed: %v", err)
	}
	if _, err := os.Stat(own); !os.IsNotExist(err) {
		t.Errorf("the container's state folder %s is still there: %v", own, err)
	}
}
