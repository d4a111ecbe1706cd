//go:build linux

package shim_test

import (
	"strings"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/typeurl/v2"
)

// TestEventOrder: containerd and its clients see task events in the required order.
func TestEventOrder(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			ctx, cancel := contextWithCancel(env)
			defer cancel()
			evch, errch := env.Client().EventService().Subscribe(ctx, `topic~="/tasks/"`)

			runDetached(t, env, "ev", nil, "sleep", "1000")
			ctrOK(t, env, "task", "exec", "--exec-id", "x1", "ev", "true")
			ctrOK(t, env, "task", "pause", "ev")
			ctrOK(t, env, "task", "resume", "ev")
			removeTask(t, env, "ev")

			want := []string{"create", "start", "exec-added", "exec-started", "exit:x1", "paused", "resumed", "exit:ev", "delete"}
			var got []string
			timeout := time.After(20 * time.Second)
			for len(got) < len(want) {
				select {
				case e := <-evch:
					v, err := typeurl.UnmarshalAny(e.Event)
					if err != nil {
						t.Fatal(err)
					}
					switch ev := v.(type) {
					case *apievents.TaskCreate:
						got = append(got, "create")
					case *apievents.TaskStart:
						got = append(got, "start")
					case *apievents.TaskExecAdded:
						got = append(got, "exec-added")
					case *apievents.TaskExecStarted:
						got = append(got, "exec-started")
					case *apievents.TaskExit:
						got = append(got, "exit:"+ev.ID)
						if ev.ID == "ev" && ev.ExitStatus != 137 {
							t.Errorf("init exit status %d, want 137", ev.ExitStatus)
						}
					case *apievents.TaskPaused:
						got = append(got, "paused")
					case *apievents.TaskResumed:
						got = append(got, "resumed")
					case *apievents.TaskDelete:
						got = append(got, "delete")
					}
				case err := <-errch:
					t.Fatalf("event stream: %v", err)
				case <-timeout:
					t.Fatalf("events %v, want %v", got, want)
				}
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("events %v, want %v", got, want)
			}
		})
	}
}
