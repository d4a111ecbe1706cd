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
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
)

type recordingPublisher struct {
	mu     sync.Mutex
	topics []string
}

func (p *recordingPublisher) Publish(ctx context.Context, topic string, e events.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.topics = append(p.topics, topic)
	return nil
}

func (p *recordingPublisher) Close() error { return nil }

// newTestService makes a task service with no backend and a private state dir.
func newTestService(t *testing.T) (taskAPI.TTRPCTaskService, context.Context, shutdown.Service, string) {
	t.Helper()
	state := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(cfg, []byte("state_dir = \""+state+"\"\nallowed_annotations = [\"io.lxcri.backend\"]\n"), 0o644)
	t.Setenv("LXCRI_CONFIG", cfg)
	ctx, sd := shutdown.WithShutdown(namespaces.WithNamespace(context.Background(), "unit"))
	s, err := NewTaskService(ctx, Registry{}, &recordingPublisher{}, sd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sd.Shutdown)
	return s, ctx, sd, state
}

func TestServiceBadRequests(t *testing.T) {
	s, ctx, _, state := newTestService(t)
	emptyBundle := t.TempDir()
	noArgs := t.TempDir()
	os.WriteFile(filepath.Join(noArgs, "config.json"), []byte(`{"ociVersion":"1.0.2","process":{"args":[]},"root":{"path":"rootfs"}}`), 0o644)
	badJSON := t.TempDir()
	os.WriteFile(filepath.Join(badJSON, "config.json"), []byte(`{"process":`), 0o644)
	notBuilt := t.TempDir()
	os.WriteFile(filepath.Join(notBuilt, "config.json"), []byte(`{"process":{"args":["true"]},"annotations":{"io.lxcri.backend":"proxmox-vm"}}`), 0o644)

	for _, tc := range []struct {
		name string
		call func() error
		is   func(error) bool
		msg  string
	}{
		{"bundle without config.json", func() error {
			_, err := s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "a", Bundle: emptyBundle})
			return err
		}, errdefs.IsInvalidArgument, "has no config.json"},
		{"malformed config.json", func() error {
			_, err := s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "a", Bundle: badJSON})
			return err
		}, errdefs.IsInvalidArgument, "malformed config.json"},
		{"spec without args", func() error {
			_, err := s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "a", Bundle: noArgs})
			return err
		}, errdefs.IsInvalidArgument, "process.args is empty"},
		{"relative bundle", func() error {
			_, err := s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "a", Bundle: "bundle/../x"})
			return err
		}, errdefs.IsInvalidArgument, "is not a clean absolute path"},
		{"empty id", func() error {
			_, err := s.Create(ctx, &taskAPI.CreateTaskRequest{Bundle: noArgs})
			return err
		}, errdefs.IsInvalidArgument, "task id is empty"},
		{"backend not built", func() error {
			_, err := s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "a", Bundle: notBuilt})
			return err
		}, errdefs.IsFailedPrecondition, `backend "proxmox-vm" is not available`},
		{"state of unknown task", func() error {
			_, err := s.State(ctx, &taskAPI.StateRequest{ID: "nope"})
			return err
		}, errdefs.IsNotFound, `task "nope"`},
		{"kill of unknown task", func() error {
			_, err := s.Kill(ctx, &taskAPI.KillRequest{ID: "nope", Signal: 9})
			return err
		}, errdefs.IsNotFound, `task "nope"`},
		{"exec into unknown task", func() error {
			_, err := s.Exec(ctx, &taskAPI.ExecProcessRequest{ID: "nope", ExecID: "e"})
			return err
		}, errdefs.IsNotFound, `task "nope"`},
		{"delete of unknown task", func() error {
			_, err := s.Delete(ctx, &taskAPI.DeleteRequest{ID: "nope"})
			return err
		}, errdefs.IsNotFound, `task "nope"`},
		{"checkpoint of unknown task", func() error {
			_, err := s.Checkpoint(ctx, &taskAPI.CheckpointTaskRequest{ID: "nope"})
			return err
		}, errdefs.IsNotFound, `task "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := errgrpc.ToNative(tc.call())
			if err == nil || !tc.is(err) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want an error saying %q", err, tc.msg)
			}
		})
	}
	if entries, _ := os.ReadDir(state); len(entries) > 0 {
		t.Errorf("failed creates left state behind: %v", entries)
	}
}

func TestShutdownWithoutTasks(t *testing.T) {
	s, ctx, sd, _ := newTestService(t)
	if _, err := s.Shutdown(ctx, &taskAPI.ShutdownRequest{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sd.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("shim did not shut down with no task left")
	}
}
