//go:build linux

package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/cio"

	lxruntime "github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/zfsroot"
)

// LXCZFS is the key of the end-to-end checkpoint/restore figures' row: the lxc backend
// with its root filesystems on the run's zfs-fuse pool.
const LXCZFS = "lxc-zfs"

// Goals of the end-to-end checkpoint and restore of a container that wrote the largest
// data size, through containerd's API.
const (
	CheckpointAPIGoal = 100 * time.Millisecond
	RestoreAPIGoal    = 200 * time.Millisecond
)

// measureCheckpointAPI fills the end-to-end rows of section 5: per data size, a container
// of the lxc backend on ZFS writes that many bytes, is checkpointed as
// `ctr containers checkpoint --task` does it (Pause, Container.Checkpoint with the task and
// the runtime, Resume) and restored as `ctr containers restore --live` does it
// (Client.Restore with image, spec and runtime, NewTask with the checkpoint, Start): the
// restore is timed until Start returned, the task RUNNING.
func (r *runner) measureCheckpointAPI() error {
	zb := &Backend{Key: LXCZFS, Name: "lxcri lxc backend, ZFS (zfs-fuse)", Runtime: r.lxcRuntime()}
	if zb.Runtime == "" {
		r.rep.addNA(ckptGroup, "ckpt-api", "checkpoint and restore through containerd's API", "the lxc backend is not built into this shim")
		return nil
	}
	zb.configPath = filepath.Join(r.stateDir, LXCZFS+".toml")
	cfg := &lxruntime.ZFSConfig{Dataset: r.pool + "/lxcri"}
	body := fmt.Sprintf("state_dir = %q\nbackend = \"lxc\"\n[zfs]\ndataset = %q\n", filepath.Join(r.stateDir, "state"), cfg.Dataset)
	if err := os.WriteFile(zb.configPath, []byte(body), 0o644); err != nil {
		return err
	}
	type figs struct{ ckpt, restore *Figure }
	fs := make([]figs, len(r.o.CkptSizes))
	for i, n := range r.o.CkptSizes {
		fs[i].ckpt = r.rep.figure(ckptGroup, "ckpt-api-"+sizeFlag(n), "checkpoint through containerd (Pause, Checkpoint --task, Resume), "+sizeLabel(n)+" written", "ms", false)
		fs[i].restore = r.rep.figure(ckptGroup, "restore-api-"+sizeFlag(n), "restore through containerd (Restore, NewTask with the checkpoint, Start: RUNNING), "+sizeLabel(n)+" written", "ms", false)
		fs[i].ckpt.Runtimes = []*Backend{zb}
		fs[i].restore.Runtimes = []*Backend{zb}
		fs[i].ckpt.Size, fs[i].restore.Size = n, n
	}
	fail := func(err error) error {
		for _, f := range fs {
			f.ckpt.Errors[zb.Key], f.restore.Errors[zb.Key] = err.Error(), err.Error()
		}
		r.progress("%s failed: %v", zb.Key, err)
		r.reset()
		return nil
	}
	if err := r.crun.release(); err != nil {
		return err
	}
	for round := 0; round < r.o.CkptRounds; round++ {
		for i, n := range r.o.CkptSizes {
			if err := r.ctx.Err(); err != nil {
				return err
			}
			ck, rs, err := r.checkpointAPI(zb, n)
			if err != nil {
				return fail(err)
			}
			fs[i].ckpt.add(zb, msOf(ck))
			fs[i].restore.add(zb, msOf(rs))
		}
		r.progress("checkpoint through containerd: round %d/%d done", round+1, r.o.CkptRounds)
	}
	// The checkpoint images are gone: their datasets are freed.
	sctx, cancel := context.WithTimeout(r.ctx, r.o.CallTimeout)
	defer cancel()
	if _, err := zfsroot.Sweep(sctx, cfg, nil, zfsroot.SweepOptions{}); err != nil {
		return fail(fmt.Errorf("sweep the checkpoints: %w", err))
	}
	return nil
}

// lxcRuntime is the runtime type of the lxc backend, "" when it was not measured.
func (r *runner) lxcRuntime() string {
	for _, b := range r.bs {
		if b.Key == LXC {
			return b.Runtime
		}
	}
	return ""
}

// checkpointAPI runs one checkpoint and restore of a container that wrote size bytes (see
// measureCheckpointAPI) and checks that the restored container sees the data.
func (r *runner) checkpointAPI(b *Backend, size int64) (ckpt, restore time.Duration, retErr error) {
	timeout := r.o.CallTimeout + time.Duration(size>>20)*100*time.Millisecond
	ctx, cancel := context.WithTimeout(r.ctx, timeout)
	defer cancel()
	ctx = withNS(ctx, r.env)
	bg := withNS(context.WithoutCancel(r.ctx), r.env)

	src, err := r.startDetached(b, r.id("ckpt", b), nil)
	if err != nil {
		return 0, 0, err
	}
	var rs []*running
	defer func() {
		if err := r.stop(append(rs, src)); err != nil && retErr == nil {
			retErr = err
		}
	}()
	if err := writeData(filepath.Join("/proc", strconv.Itoa(src.pid), "root"), size); err != nil {
		return 0, 0, err
	}

	ref := "bench/checkpoint-" + src.c.ID()
	t0 := time.Now()
	if err := src.task.Pause(ctx); err != nil {
		return 0, 0, err
	}
	img, err := src.c.Checkpoint(ctx, ref, client.WithCheckpointRuntime, client.WithCheckpointTask)
	if rerr := src.task.Resume(ctx); err == nil {
		err = rerr
	}
	if err != nil {
		return 0, 0, fmt.Errorf("checkpoint %s: %w", src.c.ID(), err)
	}
	ckpt = time.Since(t0)
	defer func() {
		if err := r.cl.ImageService().Delete(bg, ref, images.SynchronousDelete()); err != nil && retErr == nil {
			retErr = err
		}
	}()

	id := r.id("restore", b)
	t0 = time.Now()
	c, err := r.cl.Restore(ctx, id, img, client.WithRestoreImage, client.WithRestoreSpec, client.WithRestoreRuntime)
	if err != nil {
		return 0, 0, fmt.Errorf("restore %s: %w", id, err)
	}
	task, err := c.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, io.Discard, io.Discard)), client.WithTaskCheckpoint(img))
	if err != nil {
		c.Delete(bg, client.WithSnapshotCleanup)
		return 0, 0, fmt.Errorf("restore %s: new task: %w", id, err)
	}
	x := &running{c: c, task: task, pid: int(task.Pid())}
	rs = append(rs, x)
	if err := task.Start(ctx); err != nil {
		return 0, 0, fmt.Errorf("restore %s: start: %w", id, err)
	}
	restore = time.Since(t0)

	st, err := os.Stat(filepath.Join("/proc", strconv.Itoa(x.pid), "root", dataFile))
	if err != nil {
		return 0, 0, fmt.Errorf("restored %s: %w", id, err)
	}
	if st.Size() != size {
		return 0, 0, fmt.Errorf("restored %s holds %d bytes of data, want %d", id, st.Size(), size)
	}
	return ckpt, restore, nil
}

// dataFile is the file of random data a checkpointed container holds.
const dataFile = "ckpt-data"

// writeData writes dataFile of n random bytes into the root filesystem dir and syncs it.
func writeData(dir string, n int64) error {
	f, err := os.Create(filepath.Join(dir, dataFile))
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, n); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
