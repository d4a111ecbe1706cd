package shim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/fake"
)

// TestBackendBuiltOnce: containers with the same (backend, configuration) share one
// backend value; another configuration gets its own.
func TestBackendBuiltOnce(t *testing.T) {
	state := t.TempDir()
	t.Setenv("LXCRI_CONFIG", writeConfig(t, ""))
	var mu sync.Mutex
	builds := 0
	ctx, sd := shutdown.WithShutdown(namespaces.WithNamespace(context.Background(), "unit"))
	t.Cleanup(sd.Shutdown)
	l := &fake.Log{}
	s, err := NewTaskService(ctx, Registry{"lxc": func(context.Context, *runtime.Config) (runtime.Backend, error) {
		mu.Lock()
		builds++
		mu.Unlock()
		return fake.New(l), nil
	}}, &logPublisher{log: l}, sd)
	if err != nil {
		t.Fatal(err)
	}
	bundle := writeBundle(t, &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}, Root: &specs.Root{Path: "rootfs"}})
	other, err := typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigBody: []byte(`state_dir = "` + state + `"`)})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range []*taskAPI.CreateTaskRequest{
		{ID: "a", Bundle: bundle},
		{ID: "b", Bundle: bundle},
		{ID: "c", Bundle: bundle, Options: other},
		{ID: "d", Bundle: bundle, Options: other},
	} {
		if _, err := s.Create(ctx, r); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	if builds != 2 {
		t.Errorf("%d backends built for two configurations, want 2", builds)
	}
}

// TestSlowCreateDoesNotBlockOthers: while one task's Create waits in its backend, another
// task of the shim can be deleted and created, and the id being created is taken.
func TestSlowCreateDoesNotBlockOthers(t *testing.T) {
	e := newFakeEnv(t, nil)
	must(t, e.create("b"))
	inCreate := make(chan struct{})
	release := make(chan struct{})
	blocked := false // the slow create gave up waiting: the others waited for it
	e.b.Before("create", func() {
		select {
		case <-inCreate:
			return // not the slow one
		default:
		}
		close(inCreate)
		select {
		case <-release:
		case <-time.After(10 * time.Second):
			// Only the test's release, after the other RPCs returned, ends this wait
			// in time; a shim-wide lock would deadlock here.
			blocked = true
		}
	})
	slow := make(chan error, 1)
	go func() { slow <- e.create("a") }()
	<-inCreate
	if err := e.del("b", ""); err != nil {
		t.Fatalf("delete of another task: %v", err)
	}
	if err := e.create("c"); err != nil {
		t.Fatalf("create of another task: %v", err)
	}
	if err := e.create("a"); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second create of an id being created: %v, want AlreadyExists", err)
	}
	if _, err := e.status("a", ""); !errdefs.IsNotFound(err) {
		t.Errorf("state of a task being created: %v, want NotFound", err)
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	if blocked {
		t.Error("the other tasks' RPCs waited for the slow create")
	}
	if _, err := e.status("a", ""); err != nil {
		t.Errorf("state after create: %v", err)
	}
}

// TestRemoteBackendRootfs: a backend that does not need the rootfs on this host gets
// containerd's mounts as they are, and the shim mounts nothing.
func TestRemoteBackendRootfs(t *testing.T) {
	e := newFakeEnv(t, nil)
	e.b.SetNeeds(runtime.Needs{})
	src := t.TempDir()
	mounts := []*types.Mount{{Type: "bind", Source: src, Options: []string{"rbind", "ro"}}}
	if _, err := e.s.Create(e.ctx, &taskAPI.CreateTaskRequest{ID: "c", Bundle: e.bundle, Rootfs: mounts}); err != nil {
		t.Fatal(err)
	}
	req := e.b.Container("c").Request()
	if req.Rootfs != "" || len(req.Mounts) != 1 || req.Mounts[0].Source != src {
		t.Errorf("rootfs %q, mounts %v: want no rootfs and containerd's mounts", req.Rootfs, req.Mounts)
	}
	// Had the shim bind-mounted src, the marker would show through.
	os.WriteFile(filepath.Join(src, "marker"), nil, 0o644)
	if _, err := os.Stat(filepath.Join(e.bundle, "rootfs", "marker")); err == nil {
		t.Error("the shim mounted the rootfs for a backend that does not need it")
	}
}

// TestCheckpointOwnership: a backend that owns its checkpoints is asked to checkpoint and
// restores from the path containerd gives; one that keeps no rootfs here and no
// checkpoints refuses a restore; a local backend without ZFS says what to configure.
func TestCheckpointOwnership(t *testing.T) {
	for _, tc := range []struct {
		name  string
		needs runtime.Needs
		err   func(error) bool
		msg   string
	}{
		{"owns checkpoints", runtime.Needs{OwnsCheckpoints: true}, nil, ""},
		{"remote without checkpoints", runtime.Needs{}, errdefs.IsFailedPrecondition, "keeps neither"},
		{"local without zfs", runtime.Needs{HostRootfs: true, HostPids: true}, errdefs.IsFailedPrecondition, "configure [zfs] dataset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t, nil)
			e.b.SetNeeds(tc.needs)
			_, err := e.s.Create(e.ctx, &taskAPI.CreateTaskRequest{ID: "c", Bundle: e.bundle, Checkpoint: "/var/lib/ckpt/1"})
			err = native(err)
			if tc.err != nil {
				if err == nil || !tc.err(err) || !contains(err.Error(), tc.msg) {
					t.Fatalf("got %v, want an error saying %q", err, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := e.b.Container("c").Request().Checkpoint; got != "/var/lib/ckpt/1" {
				t.Errorf("restore from %q", got)
			}
			must(t, e.start("c", ""), e.checkpoint("c"))
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
