//go:build linux

package shim_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/lxcri/lxcri/integration/harness"
	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/zfsroot"
	"github.com/lxcri/lxcri/runtime/zfsroot/ckptimages"
)

// TestCheckpointOutlivesContainer: a checkpoint's storage belongs to the checkpoint. A
// container checkpointed with --exit and deleted leaves its checkpoint; a new container
// of the same id starts on a fresh filesystem; the checkpoint restores; a sweep keeps it
// while its image exists and frees it once the image is removed, and the container
// restored from it runs on unharmed.
func TestCheckpointOutlivesContainer(t *testing.T) {
	for _, b := range zfsBackends() {
		t.Run(b.name, func(t *testing.T) {
			env, pool := startZFS(t, b, "")
			cfg := &runtime.ZFSConfig{Dataset: pool + "/lxcri"}
			runDetached(t, env, "life", nil, "sleep", "1000")
			ctrOK(t, env, "task", "exec", "--exec-id", "w1", "life", "sh", "-c", "echo v1 > /state")
			fp := fingerprint(t, env, "life", "f1")
			ref := checkpoint(t, env, "life", "--exit")
			waitStatus(t, env, "life", "STOPPED")
			ctrOK(t, env, "task", "rm", "life")
			ctrOK(t, env, "container", "rm", "life")
			if cks := checkpointsOf(t, env, pool, "life"); len(cks) != 1 {
				t.Fatalf("after the container was deleted its checkpoints are %v, want one", cks)
			}

			// the same id again, from the image
			runDetached(t, env, "life", nil, "sleep", "1000")
			if got := fingerprint(t, env, "life", "f2"); got == fp || !strings.Contains(got, "No such file") {
				t.Errorf("a new container of the same id shows %q, want the image's files only", got)
			}
			restoreTask(t, env, ref, "life2")
			if got := fingerprint(t, env, "life2", "f3"); got != fp {
				t.Errorf("restore after the container was deleted shows %q, want %q", got, fp)
			}

			// the sweep reads the live checkpoints from containerd's images
			live, err := ckptimages.Descriptors(env.Context(), env.Client())
			if err != nil {
				t.Fatal(err)
			}
			var snaps []string
			for _, d := range live {
				snaps = append(snaps, d.Snapshot)
			}
			want := checkpointsOf(t, env, pool, "life")
			if len(want) != 1 || !containsPrefix(snaps, want[0]+"@") {
				t.Fatalf("live checkpoints %v do not name %v", snaps, want)
			}
			res, err := ckptimages.Sweep(env.Context(), env.Client(), cfg, nil, zfsroot.SweepOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Freed) != 0 || len(res.Live) != 1 {
				t.Errorf("sweep with the image present: %+v, want one live and nothing freed", res)
			}
			ctrOK(t, env, "image", "rm", ref)
			res, err = ckptimages.Sweep(env.Context(), env.Client(), cfg, nil, zfsroot.SweepOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Freed) != 1 || len(res.Live) != 0 {
				t.Errorf("sweep once the image is removed: %+v, want one freed", res)
			}
			if cks := checkpointsOf(t, env, pool, "life"); len(cks) != 0 {
				t.Errorf("after the sweep: %v", cks)
			}
			if got := fingerprint(t, env, "life2", "f4"); got != fp {
				t.Errorf("after its checkpoint was freed the restore shows %q, want %q", got, fp)
			}
			removeTask(t, env, "life")
			removeTask(t, env, "life2")
			assertHealthyAndClean(t, env)
		})
	}
}

func containsPrefix(ss []string, prefix string) bool {
	return slices.ContainsFunc(ss, func(s string) bool { return strings.HasPrefix(s, prefix) })
}

// TestCheckpointContainerdFlows replays containerd's own client checkpoint tests
// (integration/client/container_checkpoint_test.go of containerd v2.4.2) through the Go
// client: checkpoint (leaving the task running, or with exit), wait for the task's exit,
// delete task and container, restore the container from the checkpoint image and run its
// task from the checkpoint; and the same through a checkpoint image path. What a
// filesystem checkpoint cannot give (the process's memory) is checked where containerd's
// tests check it no further than the files: the restored task sees the checkpointed files.
func TestCheckpointContainerdFlows(t *testing.T) {
	for _, b := range zfsBackends() {
		t.Run(b.name, func(t *testing.T) {
			env, _ := startZFS(t, b, "")
			for _, tc := range []struct {
				name string
				exit bool
			}{{"leave-running", false}, {"exit", true}} {
				t.Run(tc.name, func(t *testing.T) { testContainerdRestore(t, env, "cf-"+tc.name, tc.exit) })
			}
			t.Run("image-path", func(t *testing.T) { testContainerdImagePath(t, env) })
			assertHealthyAndClean(t, env)
		})
	}
}

func testContainerdRestore(t *testing.T, env *harness.Env, id string, exit bool) {
	ctx := env.Context()
	c := env.Client()
	image, err := c.GetImage(ctx, env.Image)
	if err != nil {
		t.Fatal(err)
	}
	container, err := c.NewContainer(ctx, id, client.WithNewSnapshot(id, image),
		client.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("sh", "-c", "echo checkpointed > /state; exec sleep 1000")),
		client.WithRuntime(rt, nil))
	if err != nil {
		t.Fatal(err)
	}
	task, err := container.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	statusC, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFile(t, env, id, "/state")
	// the options apply in order: exit before the task's checkpoint, as containerd's tests do
	opts := []client.CheckpointOpts{client.WithCheckpointRuntime, client.WithCheckpointRW}
	if exit {
		opts = append(opts, client.WithCheckpointTaskExit)
	}
	opts = append(opts, client.WithCheckpointTask)
	ckName := "lxcri.test/ckpt:" + id
	checkpoint, err := container.Checkpoint(ctx, ckName, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.ImageService().Delete(ctx, ckName)
	if !exit {
		if st, err := task.Status(ctx); err != nil || st.Status != client.Running {
			t.Fatalf("after a checkpoint without exit the task is %v, %v; want running", st.Status, err)
		}
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	<-statusC
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := container.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		t.Fatal(err)
	}

	container, err = c.Restore(ctx, id, checkpoint, client.WithRestoreImage, client.WithRestoreSpec, client.WithRestoreRuntime, client.WithRestoreRW)
	if err != nil {
		t.Fatal(err)
	}
	defer container.Delete(ctx, client.WithSnapshotCleanup)
	task, err = container.NewTask(ctx, cio.NullIO, client.WithTaskCheckpoint(checkpoint))
	if err != nil {
		t.Fatalf("restore the task: %v", err)
	}
	statusC, err = task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(ctrOK(t, env, "task", "exec", "--exec-id", "r", id, "cat", "/state")); got != "checkpointed" {
		t.Errorf("the restored task's /state = %q, want checkpointed", got)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-statusC
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
}

// testContainerdImagePath: containerd's TestCheckpointRestoreWithImagePath, up to the
// process check (a filesystem checkpoint restores the files, not the running `top`).
func testContainerdImagePath(t *testing.T, env *harness.Env) {
	ctx := env.Context()
	c := env.Client()
	image, err := c.GetImage(ctx, env.Image)
	if err != nil {
		t.Fatal(err)
	}
	id := "cf-path-checkpoint"
	container, err := c.NewContainer(ctx, id, client.WithNewSnapshot(id, image),
		client.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("sh", "-c", "echo checkpointed > /state; exec sleep 1000")),
		client.WithRuntime(rt, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer container.Delete(ctx, client.WithSnapshotCleanup)
	task, err := container.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	statusC, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFile(t, env, id, "/state")
	imagePath := filepath.Join(t.TempDir(), "cr")
	if _, err := task.Checkpoint(ctx, client.WithCheckpointImagePath(imagePath)); err != nil {
		t.Fatal(err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-statusC
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if files, err := os.ReadDir(imagePath); err != nil || len(files) == 0 {
		t.Fatalf("the checkpoint wrote nothing into its image path: %v", err)
	}

	rid := "cf-path-restore"
	ncontainer, err := c.NewContainer(ctx, rid, client.WithNewSnapshot(rid, image),
		client.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("sleep", "1000")),
		client.WithRuntime(rt, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer ncontainer.Delete(ctx, client.WithSnapshotCleanup)
	ntask, err := ncontainer.NewTask(ctx, cio.NullIO, client.WithRestoreImagePath(imagePath))
	if err != nil {
		t.Fatalf("restore from the image path: %v", err)
	}
	statusC, err = ntask.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ntask.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(ctrOK(t, env, "task", "exec", "--exec-id", "r", rid, "cat", "/state")); got != "checkpointed" {
		t.Errorf("the restored task's /state = %q, want checkpointed", got)
	}
	if err := ntask.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-statusC
	if _, err := ntask.Delete(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitFile waits until the task's file exists (its process wrote it).
func waitFile(t *testing.T, env *harness.Env, id, file string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(env.Context(), 20e9)
	defer cancel()
	for i := 0; ctx.Err() == nil; i++ {
		if _, _, code := env.Ctr("task", "exec", "--exec-id", "wf", id, "test", "-s", file); code == 0 {
			return
		}
	}
	t.Fatalf("task %s did not write %s", id, file)
}
