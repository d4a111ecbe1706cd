//go:build linux

package shim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/lxcri/lxcri/integration/harness"
	"github.com/lxcri/lxcri/integration/zfstest"
	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/zfsroot"
)

// zfsBackends are the local backends whose root filesystems live on ZFS: lxc and crun
// driving runc (crun 1.8.1 itself behaves as crun-runc here; it runs in the other suites).
func zfsBackends() []backendCase {
	var out []backendCase
	for _, b := range backends() {
		if b.name == "lxc" || b.name == "crun-runc" {
			out = append(out, b)
		}
	}
	return out
}

// startZFS makes a zfs-fuse pool (its translation layer first on PATH, which the daemon
// and so the shims inherit) and a containerd whose shims put root filesystems on
// <pool>/lxcri, with extra TOML lines in [zfs].
func startZFS(t *testing.T, b backendCase, extra string, opts ...harness.Option) (*harness.Env, string) {
	t.Helper()
	pool, _ := zfstest.Pool(t)
	// after the harness's cleanup (which deletes the containers and, with containerd,
	// every checkpoint image), before the pool's: a sweep then frees every checkpoint
	t.Cleanup(func() {
		res, err := zfsroot.Sweep(context.Background(), &runtime.ZFSConfig{Dataset: pool + "/lxcri"}, nil, zfsroot.SweepOptions{})
		if err != nil {
			t.Errorf("sweep after the test: %v", err)
		} else if len(res.Live) > 0 || len(res.Young) > 0 {
			t.Errorf("sweep without images kept %v", res)
		}
		assertNoDatasets(t, pool)
	})
	b.config += fmt.Sprintf("\n[zfs]\ndataset = %q\n%s", pool+"/lxcri", extra)
	return start(t, b, opts...), pool
}

// checkpointsOf lists the checkpoint datasets of container id of env's namespace.
func checkpointsOf(t *testing.T, env *harness.Env, pool, id string) []string {
	t.Helper()
	var out []string
	for _, d := range zfstest.Datasets(t, pool) {
		if strings.HasPrefix(d, pool+"/lxcri/ckpt-"+env.Namespace+"--"+id+"--") && !strings.Contains(d, "@") {
			out = append(out, d)
		}
	}
	return out
}

// assertNoDatasets: once the test removed its containers, only the pool and the parent
// dataset remain (no clone, base or snapshot).
func assertNoDatasets(t *testing.T, pool string) {
	t.Helper()
	for _, d := range zfstest.Datasets(t, pool) {
		if d != pool && d != pool+"/lxcri" {
			t.Errorf("dataset left behind: %s", d)
		}
	}
}

// fingerprint shows the files the tests write, as the container sees them.
func fingerprint(t *testing.T, env *harness.Env, id, execID string) string {
	t.Helper()
	return ctrOK(t, env, "task", "exec", "--exec-id", execID, id, "sh", "-c",
		"cat /state 2>&1; ls -a /dir 2>&1; cat /dir/x 2>&1; cat /new 2>&1; true")
}

// checkpoint runs `ctr task checkpoint` and returns the checkpoint image's name.
func checkpoint(t *testing.T, env *harness.Env, id string, flags ...string) string {
	t.Helper()
	t0 := time.Now()
	out := ctrOK(t, env, append(append([]string{"task", "checkpoint"}, flags...), id)...)
	t.Logf("ctr task checkpoint %s: %v", id, time.Since(t0))
	ref := strings.TrimSpace(out)
	if !strings.HasPrefix(ref, "containerd.io/checkpoint/") {
		t.Fatalf("ctr task checkpoint printed %q, want a checkpoint image name", out)
	}
	return ref
}

// restoreRun restores checkpoint image ref (made by `ctr containers checkpoint --task`) as
// container id with `ctr container restore --live`, which hands the checkpoint to the shim.
func restoreRun(t *testing.T, env *harness.Env, ref, id string) {
	t.Helper()
	t0 := time.Now()
	ctrOK(t, env, "container", "restore", "--live", id, ref)
	waitRunning(t, env, id)
	t.Logf("ctr container restore --live %s: running after %v", id, time.Since(t0))
}

// checkpointContainer runs `ctr containers checkpoint --task id ref`.
func checkpointContainer(t *testing.T, env *harness.Env, id, ref string) string {
	t.Helper()
	t0 := time.Now()
	ctrOK(t, env, "containers", "checkpoint", "--task", id, ref)
	t.Logf("ctr containers checkpoint --task %s: %v", id, time.Since(t0))
	return ref
}

// restoreTask restores a `ctr task checkpoint` image as a new container id running
// `sleep 1000`, as `ctr run --checkpoint` would (ctr 2.4.2's run lacks the flag): a
// container of the image whose task is created WithTaskCheckpoint.
func restoreTask(t *testing.T, env *harness.Env, ref, id string) {
	t.Helper()
	ctx := env.Context()
	c := env.Client()
	img, err := c.GetImage(ctx, env.Image)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := c.GetImage(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	cont, err := c.NewContainer(ctx, id, client.WithNewSnapshot(id, img),
		client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "1000")),
		client.WithRuntime(rt, nil))
	if err != nil {
		t.Fatalf("new container %s: %v", id, err)
	}
	task, err := cont.NewTask(ctx, cio.NullIO, client.WithTaskCheckpoint(ck))
	if err != nil {
		t.Fatalf("restore %s from %s: %v", id, ref, err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start restored %s: %v", id, err)
	}
	t.Logf("restore of %s from a task checkpoint: running after %v", id, time.Since(t0))
}

func snapshotsOf(t *testing.T, pool, dataset string) []string {
	var out []string
	for _, d := range zfstest.Datasets(t, pool) {
		if strings.HasPrefix(d, dataset+"@") {
			out = append(out, d)
		}
	}
	return out
}

// TestCheckpointRestore: a container writes files, is checkpointed, keeps running and
// changes them; a restore shows exactly the checkpointed files; a second checkpoint
// restores to its own state; deleting the original first leaves the restores intact.
func TestCheckpointRestore(t *testing.T) {
	for _, b := range zfsBackends() {
		t.Run(b.name, func(t *testing.T) {
			env, pool := startZFS(t, b, "")
			runDetached(t, env, "src", nil, "sleep", "1000")
			ctrOK(t, env, "task", "exec", "--exec-id", "w1", "src", "sh", "-c", "echo v1 > /state && mkdir /dir && echo x > /dir/x")
			fp1 := fingerprint(t, env, "src", "f1")

			ds := pool + "/lxcri/ct-" + env.Namespace + "--src"
			if !slices.Contains(zfstest.Datasets(t, pool), ds) {
				t.Fatalf("no dataset %s for the container: %v", ds, zfstest.Datasets(t, pool))
			}
			ref1 := checkpoint(t, env, "src")
			if st := taskStatus(env, "src"); st != "RUNNING" {
				t.Fatalf("after the checkpoint the task is %s, want RUNNING", st)
			}
			ctrOK(t, env, "task", "exec", "--exec-id", "w2", "src", "sh", "-c", "echo v2 > /state && rm -r /dir && echo n > /new")
			fp2 := fingerprint(t, env, "src", "f2")
			if fp1 == fp2 {
				t.Fatalf("the files did not change: %q", fp1)
			}

			restoreTask(t, env, ref1, "dst1")
			if got := fingerprint(t, env, "dst1", "f3"); got != fp1 {
				t.Errorf("restore of the first checkpoint shows %q, want %q", got, fp1)
			}

			ref2 := checkpointContainer(t, env, "src", "lxcri.test/ckpt:two")
			restoreRun(t, env, ref2, "dst2")
			if got := fingerprint(t, env, "dst2", "f4"); got != fp2 {
				t.Errorf("restore of the second checkpoint shows %q, want %q", got, fp2)
			}
			if got := fingerprint(t, env, "src", "f5"); got != fp2 {
				t.Errorf("the original shows %q after the restores, want %q", got, fp2)
			}

			// the original goes first: its checkpoints, and so the restores, live on
			removeTask(t, env, "src")
			if got := fingerprint(t, env, "dst1", "f6"); got != fp1 {
				t.Errorf("after the original was deleted dst1 shows %q, want %q", got, fp1)
			}
			removeTask(t, env, "dst1")
			if got := fingerprint(t, env, "dst2", "f7"); got != fp2 {
				t.Errorf("after the original was deleted dst2 shows %q, want %q", got, fp2)
			}
			removeTask(t, env, "dst2")
			assertHealthyAndClean(t, env)
		})
	}
}

// TestCheckpointExit: --exit stops the task after the checkpoint, which restores.
func TestCheckpointExit(t *testing.T) {
	for _, b := range zfsBackends() {
		t.Run(b.name, func(t *testing.T) {
			env, _ := startZFS(t, b, "")
			runDetached(t, env, "ex", nil, "sleep", "1000")
			ctrOK(t, env, "task", "exec", "--exec-id", "w1", "ex", "sh", "-c", "echo v1 > /state")
			fp := fingerprint(t, env, "ex", "f1")
			ref := checkpoint(t, env, "ex", "--exit")
			waitStatus(t, env, "ex", "STOPPED")
			restoreTask(t, env, ref, "ex2")
			if got := fingerprint(t, env, "ex2", "f2"); got != fp {
				t.Errorf("restore shows %q, want %q", got, fp)
			}
			ctrOK(t, env, "task", "rm", "ex")
			ctrOK(t, env, "container", "rm", "ex")
			removeTask(t, env, "ex2")
			assertHealthyAndClean(t, env)
		})
	}
}

// TestCheckpointPortable: with portable = true the checkpoint carries a send stream and
// restores after the original container and its checkpoints' snapshots are gone; retain
// prunes.
func TestCheckpointPortable(t *testing.T) {
	for _, b := range zfsBackends() {
		t.Run(b.name, func(t *testing.T) {
			env, pool := startZFS(t, b, "portable = true\nretain = 2\n")
			runDetached(t, env, "po", nil, "sleep", "1000")
			ctrOK(t, env, "task", "exec", "--exec-id", "w1", "po", "sh", "-c", "echo v1 > /state && mkdir /dir && echo x > /dir/x")
			fp := fingerprint(t, env, "po", "f1")
			ref := checkpointContainer(t, env, "po", "lxcri.test/ckpt:po1")
			first := checkpointsOf(t, env, pool, "po")
			checkpointContainer(t, env, "po", "lxcri.test/ckpt:po2")
			checkpoint(t, env, "po")
			kept := checkpointsOf(t, env, pool, "po")
			if len(kept) != 2 || slices.Contains(kept, first[0]) {
				t.Errorf("with retain = 2 after three checkpoints the checkpoints are %v (the first was %v)", kept, first)
			}
			removeTask(t, env, "po")
			// the checkpoints outlive the container; once freed, the stream restores
			if _, err := zfsroot.Sweep(env.Context(), &runtime.ZFSConfig{Dataset: pool + "/lxcri"}, nil, zfsroot.SweepOptions{}); err != nil {
				t.Fatal(err)
			}
			if left := checkpointsOf(t, env, pool, "po"); len(left) != 0 {
				t.Fatalf("checkpoints left after the sweep: %v", left)
			}
			restoreRun(t, env, ref, "po2")
			if got := fingerprint(t, env, "po2", "f2"); got != fp {
				t.Errorf("restore from the stream shows %q, want %q", got, fp)
			}
			removeTask(t, env, "po2")
			assertHealthyAndClean(t, env)
		})
	}
}

// TestCheckpointBadInput: clear errors with the right codes, nothing left behind.
func TestCheckpointBadInput(t *testing.T) {
	for _, b := range zfsBackends() {
		t.Run(b.name, func(t *testing.T) {
			env, pool := startZFS(t, b, "")
			ctx := env.Context()
			ts := env.Client().TaskService()

			_, err := ts.Checkpoint(ctx, &tasks.CheckpointTaskRequest{ContainerID: "nope"})
			err = errgrpc.ToNative(err)
			if !errdefs.IsNotFound(err) {
				t.Errorf("checkpoint of an unknown task: %v, want NotFound", err)
			}

			ctrOK(t, env, "run", "-d", "--runtime", rt, env.Image, "done", "true")
			waitStatus(t, env, "done", "STOPPED")
			_, err = ts.Checkpoint(ctx, &tasks.CheckpointTaskRequest{ContainerID: "done"})
			err = errgrpc.ToNative(err)
			if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "stopped") {
				t.Errorf("checkpoint of a stopped task: %v, want FailedPrecondition", err)
			}
			ctrOK(t, env, "task", "rm", "done")
			ctrOK(t, env, "container", "rm", "done")

			empty := t.TempDir()
			corrupt := t.TempDir()
			os.WriteFile(filepath.Join(corrupt, "lxcri-checkpoint.json"), []byte("{not json"), 0o600)
			descriptor := func(ns string) []byte {
				return []byte(fmt.Sprintf(`{"version":1,"backend":"lxc","container_id":"y","namespace":%[2]q,`+
					`"dataset":"%[1]s/lxcri/ct-%[2]s--y","snapshot":"%[1]s/lxcri/ct-%[2]s--y@ckpt-1",`+
					`"spec_digest":"sha256:%[3]s","process_state":"-","criu":"-","created":"2026-01-01T00:00:00Z"}`,
					pool, ns, strings.Repeat("0", 64)))
			}
			gone := t.TempDir()
			os.WriteFile(filepath.Join(gone, "lxcri-checkpoint.json"), descriptor(env.Namespace), 0o600)
			otherNS := t.TempDir()
			os.WriteFile(filepath.Join(otherNS, "lxcri-checkpoint.json"), descriptor("other"), 0o600)
			for _, tc := range []struct {
				name, dir string
				is        func(error) bool
				msg       string
			}{
				{"missing-descriptor", empty, errdefs.IsNotFound, "has no lxcri-checkpoint.json"},
				{"corrupt-descriptor", corrupt, errdefs.IsInvalidArgument, "is corrupt"},
				{"snapshot-gone", gone, errdefs.IsNotFound, "is not on this host"},
				{"other-namespace", otherNS, errdefs.IsInvalidArgument, "descriptor.snapshot"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					err := restoreFrom(t, env, "bad-"+tc.name, tc.dir, nil)
					t.Logf("restore: %v", err)
					if err == nil || !tc.is(err) || !strings.Contains(err.Error(), tc.msg) {
						t.Errorf("restore: %v, want an error saying %q", err, tc.msg)
					}
					assertHealthyAndClean(t, env)
				})
			}

			t.Run("no-such-dataset", func(t *testing.T) {
				err := createTask(t, env, "bad-ds", &runtimeoptions.Options{ConfigBody: []byte("[zfs]\ndataset = \"nosuchpool-lxcri/lxcri\"\n")})
				t.Logf("create: %v", err)
				if err == nil || !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "nosuchpool-lxcri") {
					t.Errorf("create with a dataset of no pool: %v, want NotFound naming it", err)
				}
				assertHealthyAndClean(t, env)
			})

			t.Run("pool-full", func(t *testing.T) {
				full, _ := zfstest.Pool(t, zfstest.WithSize(zfstest.MinSize))
				fill := filepath.Join(zfstest.Mountpoint(t, full), "fill")
				f, err := os.Create(fill)
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 1<<20)
				for i := 0; i < 200; i++ {
					if _, err := f.Write(buf); err != nil {
						break
					}
				}
				f.Close()
				err = createTask(t, env, "bad-full", &runtimeoptions.Options{ConfigBody: []byte(fmt.Sprintf("[zfs]\ndataset = %q\n", full+"/lxcri"))})
				t.Logf("create: %v", err)
				if err == nil || !errdefs.IsFailedPrecondition(err) {
					t.Errorf("create on a full pool: %v, want FailedPrecondition", err)
				}
				assertHealthyAndClean(t, env)
				for _, d := range zfstest.Datasets(t, full) {
					if d != full && d != full+"/lxcri" {
						t.Errorf("dataset left on the full pool: %s", d)
					}
				}
				os.Remove(fill)
			})
		})
	}
}

// restoreFrom creates a container and tries to create its task from the checkpoint
// directory dir (containerd's RestoreFromPath, as CRI uses it); all is removed again.
func restoreFrom(t *testing.T, env *harness.Env, id, dir string, opts *runtimeoptions.Options) error {
	t.Helper()
	ctx := env.Context()
	c := env.Client()
	image, err := c.GetImage(ctx, env.Image)
	if err != nil {
		t.Fatal(err)
	}
	var rtOpts any
	if opts != nil {
		rtOpts = opts
	}
	cont, err := c.NewContainer(ctx, id,
		client.WithNewSnapshot(id, image),
		client.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("sleep", "1000")),
		client.WithRuntime(rt, rtOpts))
	if err != nil {
		t.Fatalf("new container: %v", err)
	}
	defer cont.Delete(ctx, client.WithSnapshotCleanup)
	task, err := cont.NewTask(ctx, cio.NullIO, func(_ context.Context, _ *client.Client, info *client.TaskInfo) error {
		info.Checkpoint = &types.Descriptor{MediaType: images.MediaTypeContainerd1Checkpoint, Annotations: map[string]string{"RestoreFromPath": dir}}
		return nil
	})
	if err == nil {
		task.Delete(ctx, client.WithProcessKill)
	}
	return err
}

// TestCheckpointNamespaces: a checkpoint image taken to another namespace (copied, as an
// export and import would) restores there only when it carries its filesystem
// (portable): that is received into the new namespace's own dataset. Without a stream it
// names the other namespace's snapshot, and the restore is refused (InvalidArgument)
// without touching it. Nothing is left behind either way.
func TestCheckpointNamespaces(t *testing.T) {
	for _, b := range zfsBackends() {
		t.Run(b.name, func(t *testing.T) {
			nsB := fmt.Sprintf("%s%d", nsPrefix, nsSeq.Add(1))
			env, pool := startZFS(t, b, "", harness.WithExtraNamespaces(nsB))
			envB := env.In(nsB)

			runDetached(t, env, "src", nil, "sleep", "1000")
			ctrOK(t, env, "task", "exec", "--exec-id", "w1", "src", "sh", "-c", "echo secret of A > /state")
			local := checkpointContainer(t, env, "src", "lxcri.test/ckpt:local")

			portableOpts := &runtimeoptions.Options{ConfigBody: []byte("[zfs]\nportable = true\n")}
			startTask(t, env, "psrc", portableOpts)
			ctrOK(t, env, "task", "exec", "--exec-id", "w1", "psrc", "sh", "-c", "echo portable > /state")
			fp := fingerprint(t, env, "psrc", "f1")
			portable := checkpointContainer(t, env, "psrc", "lxcri.test/ckpt:portable")

			for _, ref := range []string{local, portable} {
				moveImage(t, env, envB, ref)
			}
			srcDS := pool + "/lxcri/ct-" + env.Namespace + "--src"
			before := snapshotsOf(t, pool, srcDS)

			t.Run("without stream", func(t *testing.T) {
				err := restoreTaskErr(t, envB, local, "dst")
				t.Logf("restore in %s: %v", nsB, err)
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "descriptor.snapshot") || !strings.Contains(err.Error(), env.Namespace) {
					t.Errorf("restore of %s's checkpoint in %s = %v, want InvalidArgument naming descriptor.snapshot and %s", env.Namespace, nsB, err, env.Namespace)
				}
				if ds := pool + "/lxcri/ct-" + nsB + "--dst"; slices.Contains(zfstest.Datasets(t, pool), ds) {
					t.Errorf("the refused restore left %s", ds)
				}
				if after := snapshotsOf(t, pool, srcDS); !slices.Equal(after, before) {
					t.Errorf("snapshots of %s changed: %v, were %v", srcDS, after, before)
				}
			})
			t.Run("with stream", func(t *testing.T) {
				if err := restoreTaskErr(t, envB, portable, "pdst"); err != nil {
					t.Fatalf("restore of a portable checkpoint in %s: %v", nsB, err)
				}
				ds := pool + "/lxcri/ct-" + nsB + "--pdst"
				if !slices.Contains(zfstest.Datasets(t, pool), ds) {
					t.Errorf("no dataset %s for the restore: %v", ds, zfstest.Datasets(t, pool))
				}
				if o := zfsGet(t, ds, "origin"); o != "-" {
					t.Errorf("%s has origin %s, want none (received from the stream)", ds, o)
				}
				if got := fingerprint(t, envB, "pdst", "f2"); got != fp {
					t.Errorf("restore in %s shows %q, want %q", nsB, got, fp)
				}
				removeTask(t, envB, "pdst")
			})
			removeTask(t, env, "src")
			removeTask(t, env, "psrc")
			assertHealthyAndClean(t, env)
			assertHealthyAndClean(t, envB)
		})
	}
}

// startTask creates and starts `sleep 1000` as container id with lxcri runtime options.
func startTask(t *testing.T, env *harness.Env, id string, opts *runtimeoptions.Options) {
	t.Helper()
	ctx := env.Context()
	c := env.Client()
	img, err := c.GetImage(ctx, env.Image)
	if err != nil {
		t.Fatal(err)
	}
	cont, err := c.NewContainer(ctx, id, client.WithNewSnapshot(id, img),
		client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "1000")),
		client.WithRuntime(rt, opts))
	if err != nil {
		t.Fatalf("new container %s: %v", id, err)
	}
	task, err := cont.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("new task %s: %v", id, err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
}

// moveImage copies image ref (its index and every blob it lists) from env's namespace
// into to's, as `ctr image export` and `ctr -n <to> image import` would, had ctr 2.4.2's
// exporter not refused checkpoint images ("unable to create manifests file": it reads the
// checkpoint's blobs as image manifests).
func moveImage(t *testing.T, env, to *harness.Env, ref string) {
	t.Helper()
	ctx := env.Context()
	cs := env.Client().ContentStore()
	img, err := env.Client().ImageService().Get(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	// a lease keeps the copied blobs from containerd's garbage collector until the image
	// refers to them
	toCtx, done, err := to.Client().WithLease(to.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer done(context.WithoutCancel(toCtx))
	var move func(d ocispec.Descriptor)
	move = func(d ocispec.Descriptor) {
		if images.IsIndexType(d.MediaType) {
			b, err := content.ReadBlob(ctx, cs, d)
			if err != nil {
				t.Fatal(err)
			}
			var idx ocispec.Index
			if err := json.Unmarshal(b, &idx); err != nil {
				t.Fatal(err)
			}
			for _, m := range idx.Manifests { // children first: the index's labels hold them
				move(m)
			}
		}
		info, err := cs.Info(ctx, d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		ra, err := cs.ReaderAt(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		defer ra.Close()
		if err := content.WriteBlob(toCtx, cs, "move-"+d.Digest.String(), content.NewReader(ra), d, content.WithLabels(info.Labels)); err != nil {
			t.Fatalf("copy %s into %s: %v", d.Digest, to.Namespace, err)
		}
	}
	move(img.Target)
	if _, err := to.Client().ImageService().Create(toCtx, images.Image{Name: ref, Target: img.Target, Labels: img.Labels}); err != nil {
		t.Fatalf("create %s in %s: %v", ref, to.Namespace, err)
	}
}

// restoreTaskErr is restoreTask that returns the error of the task's creation (and removes
// the container again when it fails).
func restoreTaskErr(t *testing.T, env *harness.Env, ref, id string) error {
	t.Helper()
	ctx := env.Context()
	c := env.Client()
	img, err := c.GetImage(ctx, env.Image)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := c.GetImage(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	cont, err := c.NewContainer(ctx, id, client.WithNewSnapshot(id, img),
		client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "1000")),
		client.WithRuntime(rt, nil))
	if err != nil {
		t.Fatalf("new container %s: %v", id, err)
	}
	task, err := cont.NewTask(ctx, cio.NullIO, client.WithTaskCheckpoint(ck))
	if err != nil {
		cont.Delete(ctx, client.WithSnapshotCleanup)
		return err // the client's error is native already
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start restored %s: %v", id, err)
	}
	return nil
}

// zfsGet reads one property with the zfs on PATH (the pool's translation layer first).
func zfsGet(t *testing.T, name, prop string) string {
	t.Helper()
	out, err := exec.Command("zfs", "get", "-H", "-o", "value", prop, name).CombinedOutput()
	if err != nil {
		t.Fatalf("zfs get %s %s: %v: %s", prop, name, err, out)
	}
	return strings.TrimSpace(string(out))
}
