package shim

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/events"
	ctdruntime "github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/fake"
)

// logPublisher adds each event's topic to the fake backend's log, so that a test sees
// backend calls and events in one order.
type logPublisher struct{ log *fake.Log }

func (p *logPublisher) Publish(ctx context.Context, topic string, e events.Event) error {
	p.log.Add(topic)
	return nil
}

func (p *logPublisher) Close() error { return nil }

// newFakeService makes a task service whose only backend, "lxc", is a fake.
// It returns the service, a context in namespace "unit", the backend, the log of calls
// and events, and the state folder.
func newFakeService(t *testing.T, config string) (taskAPI.TTRPCTaskService, context.Context, *fake.Backend, *fake.Log, string) {
	t.Helper()
	state := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte("state_dir = \""+state+"\"\n"+config), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LXCRI_CONFIG", cfg)
	l := &fake.Log{}
	fb := fake.New(l)
	ctx, sd := shutdown.WithShutdown(namespaces.WithNamespace(context.Background(), "unit"))
	factory := func(context.Context, *runtime.Config) (runtime.Backend, error) { return fb, nil }
	s, err := NewTaskService(ctx, Registry{"lxc": factory}, &logPublisher{log: l}, sd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sd.Shutdown)
	return s, ctx, fb, l, state
}

// protoAny wraps a JSON process spec as containerd sends it.
func protoAny(b []byte) *anypb.Any {
	return &anypb.Any{TypeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process", Value: b}
}

// writeBundle makes a bundle with a rootfs folder and spec as its config.json.
func writeBundle(t *testing.T, spec *specs.Spec) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestKillAllOnInitExit: when the init of a container without a pid namespace of its own
// exits, whatever is left in the container is killed (SIGKILL) before TaskExit is
// published; a container with its own pid namespace is left to the kernel.
func TestKillAllOnInitExit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		linux    *specs.Linux
		wantKill bool
	}{
		{"own pid namespace", &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}}}, false},
		{"joins a pid namespace", &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace, Path: "/proc/1234/ns/pid"}}}, true},
		{"host pid namespace", &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace}}}, true},
		{"no linux section", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ctx, fb, l, _ := newFakeService(t, "")
			bundle := writeBundle(t, &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}, Root: &specs.Root{Path: "rootfs"}, Linux: tc.linux})
			if _, err := s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: bundle}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Start(ctx, &taskAPI.StartRequest{ID: "c1"}); err != nil {
				t.Fatal(err)
			}
			fb.Container("c1").Exit(0)
			deadline := time.Now().Add(5 * time.Second)
			for !slices.Contains(l.Lines(), ctdruntime.TaskExitEventTopic) {
				if time.Now().After(deadline) {
					t.Fatalf("no TaskExit published; calls %v", l.Lines())
				}
				time.Sleep(5 * time.Millisecond)
			}
			calls := l.Lines()
			kill := slices.Index(calls, "kill-all killed")
			exit := slices.Index(calls, ctdruntime.TaskExitEventTopic)
			switch {
			case tc.wantKill && kill < 0:
				t.Errorf("nothing killed after the init's exit; calls %v", calls)
			case tc.wantKill && kill > exit:
				t.Errorf("kill-all came after TaskExit; calls %v", calls)
			case !tc.wantKill && kill >= 0:
				t.Errorf("kill-all in a container with its own pid namespace; calls %v", calls)
			}
			if n := countOf(calls, "kill-all killed"); n > 1 {
				t.Errorf("kill-all %d times, want once; calls %v", n, calls)
			}
			if _, err := s.Delete(ctx, &taskAPI.DeleteRequest{ID: "c1"}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestNoKillAllForUnstartedTask: a created task deleted before it started ran nothing but
// its held init, so its deletion asks for no kill-all (which would race the backend's
// forced delete).
func TestNoKillAllForUnstartedTask(t *testing.T) {
	s, ctx, _, l, _ := newFakeService(t, "")
	bundle := writeBundle(t, &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}, Root: &specs.Root{Path: "rootfs"}})
	if _, err := s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: bundle}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, &taskAPI.DeleteRequest{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(l.Lines(), ctdruntime.TaskExitEventTopic) {
		if time.Now().After(deadline) {
			t.Fatalf("no TaskExit published; calls %v", l.Lines())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if slices.Contains(l.Lines(), "kill-all killed") {
		t.Errorf("kill-all for a task that never started; calls %v", l.Lines())
	}
}

func countOf(l []string, s string) int {
	n := 0
	for _, x := range l {
		if x == s {
			n++
		}
	}
	return n
}
