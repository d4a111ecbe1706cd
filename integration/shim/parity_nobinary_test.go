//go:build linux

package shim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
)

// TestMissingBinaryFailsCreate: a process whose program does not exist fails at NewTask
// (Create) with a message naming it, as with runc, and no exit event is published for it.
func TestMissingBinaryFailsCreate(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			ctx, cancel := contextWithCancel(env)
			defer cancel()
			evch, errch := env.Client().EventService().Subscribe(ctx, `topic~="/tasks/"`)
			c := env.Client()
			img, err := c.GetImage(ctx, env.Image)
			if err != nil {
				t.Fatal(err)
			}
			cont, err := c.NewContainer(ctx, "nobin",
				client.WithNewSnapshot("nobin", img),
				client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("no-such-binary")),
				client.WithRuntime(rt, nil))
			if err != nil {
				t.Fatal(err)
			}
			defer cont.Delete(context.WithoutCancel(ctx), client.WithSnapshotCleanup)
			task, err := cont.NewTask(ctx, cio.NullIO)
			if err == nil {
				task.Delete(ctx, client.WithProcessKill)
				t.Fatal("NewTask of a process whose binary does not exist succeeded")
			}
			if !strings.Contains(err.Error(), "no-such-binary") {
				t.Errorf("NewTask failed with %q, want a message naming no-such-binary", err)
			}
			// A task that ran fine afterwards marks the end of the events to look at.
			_, task = newTask(t, env, "after", cio.NullIO, oci.WithProcessArgs("true"))
			wch, err := task.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := task.Start(ctx); err != nil {
				t.Fatal(err)
			}
			<-wch
			for {
				select {
				case e := <-evch:
					v, err := typeurl.UnmarshalAny(e.Event)
					if err != nil {
						t.Fatal(err)
					}
					switch ev := v.(type) {
					case *apievents.TaskExit:
						if ev.ContainerID == "nobin" {
							t.Errorf("an exit event was published for the task that failed to create: %+v", ev)
						}
						if ev.ContainerID == "after" {
							return
						}
					case *apievents.TaskCreate:
						if ev.ContainerID == "nobin" {
							t.Errorf("a create event was published for the task that failed to create")
						}
					}
				case err := <-errch:
					t.Fatalf("event stream: %v", err)
				case <-time.After(30 * time.Second):
					t.Fatal("no exit event for the second task within 30s")
				}
			}
		})
	}
}
