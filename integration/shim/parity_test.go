//go:build linux

package shim_test

import (
	"context"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/lxcri/lxcri/integration/harness"
)

// The parity_*_test.go files hold lxcri to what containerd's own client tests expect of its
// runc shim (integration/client of containerd), on every backend.

// newTask creates a container of the test image with the Go client and its task (not
// started); both are removed when the test ends.
func newTask(t *testing.T, env *harness.Env, id string, ioc cio.Creator, ops ...oci.SpecOpts) (client.Container, client.Task) {
	t.Helper()
	ctx := env.Context()
	c := env.Client()
	img, err := c.GetImage(ctx, env.Image)
	if err != nil {
		t.Fatal(err)
	}
	cont, err := c.NewContainer(ctx, id,
		client.WithNewSnapshot(id, img),
		client.WithNewSpec(append([]oci.SpecOpts{oci.WithImageConfig(img)}, ops...)...),
		client.WithRuntime(rt, nil))
	if err != nil {
		t.Fatalf("new container: %v", err)
	}
	t.Cleanup(func() { cont.Delete(context.WithoutCancel(ctx), client.WithSnapshotCleanup) })
	task, err := cont.NewTask(ctx, ioc)
	if err != nil {
		t.Fatalf("new task: %v", err)
	}
	t.Cleanup(func() { task.Delete(context.WithoutCancel(ctx), client.WithProcessKill) })
	return cont, task
}
