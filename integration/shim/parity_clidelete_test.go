//go:build linux

package shim_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/integration/harness"
)

// TestKillAfterCLIDelete: the crun backend keeps its CLI's state where runc's runtime
// options put it (Root, then the namespace), as containerd's runc shim does, so that the
// runtime's own CLI sees the container; once that CLI has deleted it behind the shim's
// back, Kill answers NotFound and the task's exit still reaches Wait.
func TestKillAfterCLIDelete(t *testing.T) {
	for _, b := range backends() {
		if b.name == "lxc" {
			continue // no runtime CLI: LXC containers are not in a runc-style state root
		}
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			ctx, cancel := contextWithCancel(env)
			defer cancel()
			c := env.Client()
			img, err := c.GetImage(ctx, env.Image)
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			id := "clidelete"
			cont, err := c.NewContainer(ctx, id,
				client.WithNewSnapshot(id, img),
				client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "1000")),
				client.WithRuntime(rt, &options.Options{Root: root}))
			if err != nil {
				t.Fatal(err)
			}
			defer cont.Delete(context.WithoutCancel(ctx), client.WithSnapshotCleanup)
			task, err := cont.NewTask(ctx, cio.NullIO)
			if err != nil {
				t.Fatal(err)
			}
			defer task.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
			wch, err := task.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := task.Start(ctx); err != nil {
				t.Fatal(err)
			}
			cli := cliBinary(t, b)
			if out, err := exec.Command(cli, "--root", filepath.Join(root, env.Namespace), "delete", "--force", id).CombinedOutput(); err != nil {
				t.Fatalf("%s delete --force: %v: %s", cli, err, out)
			}
			if err := task.Kill(ctx, syscall.SIGKILL); !errdefs.IsNotFound(err) {
				t.Errorf("Kill after the CLI deleted the container: %v, want NotFound", err)
			}
			select {
			case <-wch:
			case <-time.After(30 * time.Second):
				t.Fatal("no exit within 30s of the CLI deleting the container")
			}
		})
	}
}

// cliBinary is the runtime CLI backend b's configuration names.
func cliBinary(t *testing.T, b backendCase) string {
	t.Helper()
	if b.name == "crun-runc" {
		return "runc"
	}
	return filepath.Join(harness.RepoRoot(), "integration", "testdata", "crun-compat")
}
