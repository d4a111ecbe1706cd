//go:build linux

package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/containerd/v2/pkg/rootfs"

	lxruntime "github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/zfsroot"
)

// ZFS is the key of the checkpoint/restore figures' lxcri row: the root filesystem on a
// ZFS dataset (runtime/zfsroot), measured with zfsroot.MeasureCheckpoint.
const ZFS = "lxcri-zfs"

const ckptGroup = "5. checkpoint/restore"

// ParseSizes parses a comma-separated list of byte sizes with an optional K, M or G
// suffix (powers of 1024), e.g. "1M,100M,1G".
func ParseSizes(s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		mult := int64(1)
		switch strings.ToUpper(f[len(f)-1:]) {
		case "K":
			mult = 1 << 10
		case "M":
			mult = 1 << 20
		case "G":
			mult = 1 << 30
		}
		if mult != 1 {
			f = f[:len(f)-1]
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad size %q", f)
		}
		out = append(out, n*mult)
	}
	return out, nil
}

// FormatSizes is the inverse of ParseSizes.
func FormatSizes(xs []int64) string {
	var s []string
	for _, x := range xs {
		s = append(s, sizeFlag(x))
	}
	return strings.Join(s, ",")
}

func sizeFlag(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return strconv.FormatInt(n, 10)
}

// sizeLabel is a size as the tables show it.
func sizeLabel(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// measureCheckpoint fills section 5: per data size, lxcri's checkpoint (syncfs + zfs
// snapshot) and restore (zfs clone + mount) on a zfs-fuse pool, against what containerd's
// runc shim does for the root filesystem on `ctr checkpoint --rw` / `ctr restore --rw`:
// a diff of the container's rw snapshot into the content store, and the apply of that diff
// into a fresh snapshot. The runc shim's CRIU step is not part of it.
func (r *runner) measureCheckpoint() error {
	var base *Backend
	for _, b := range r.all {
		if b.Baseline {
			base = b
		}
	}
	zb := &Backend{Key: ZFS, Name: "lxcri (ZFS)"}
	runtimes := []*Backend{base, zb}
	type figs struct{ ckpt, restore *Figure }
	fs := make([]figs, len(r.o.CkptSizes))
	for i, n := range r.o.CkptSizes {
		l := sizeLabel(n)
		fs[i].ckpt = r.rep.figure(ckptGroup, "ckpt-"+sizeFlag(n), "checkpoint (filesystem), "+l, "ms", false)
		fs[i].ckpt.Runtimes = runtimes
		fs[i].ckpt.Size = n
	}
	for i, n := range r.o.CkptSizes {
		l := sizeLabel(n)
		fs[i].restore = r.rep.figure(ckptGroup, "restore-"+sizeFlag(n), "restore (filesystem), "+l, "ms", false)
		fs[i].restore.Runtimes = runtimes
	}

	r.progress("checkpoint: sizes %s, %d rounds", FormatSizes(r.o.CkptSizes), r.o.CkptRounds)
	cfg := &lxruntime.ZFSConfig{Dataset: r.pool + "/bench"}

	zfsFailed, fsFailed := false, false
	for round := 0; round < r.o.CkptRounds; round++ {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		for _, b := range rounds(runtimes, round) {
			switch {
			case b == zb && !zfsFailed:
				ctx, cancel := context.WithTimeout(r.ctx, time.Duration(len(r.o.CkptSizes))*r.o.CallTimeout)
				ms, err := zfsroot.MeasureCheckpoint(ctx, cfg, r.o.CkptSizes)
				cancel()
				for i, m := range ms {
					fs[i].ckpt.add(zb, msOf(m.Checkpoint))
					fs[i].restore.add(zb, msOf(m.Restore))
				}
				if err != nil {
					zfsFailed = true
					for _, f := range fs {
						f.ckpt.Errors[zb.Key], f.restore.Errors[zb.Key] = err.Error(), err.Error()
					}
				}
			case b == base && !fsFailed:
				for i, n := range r.o.CkptSizes {
					ck, rs, err := r.fsCheckpoint(base, n)
					if err != nil {
						fsFailed = true
						for _, f := range fs {
							f.ckpt.Errors[base.Key], f.restore.Errors[base.Key] = err.Error(), err.Error()
						}
						break
					}
					fs[i].ckpt.add(base, msOf(ck))
					fs[i].restore.add(base, msOf(rs))
				}
			}
		}
		r.progress("checkpoint: round %d/%d done", round+1, r.o.CkptRounds)
	}
	return nil
}

func msOf(d time.Duration) float64 {
	v := ms(d)
	if v <= 0 { // a clock too coarse for the step: keep the figure positive
		v = math.SmallestNonzeroFloat64
	}
	return v
}

// fsCheckpoint measures, on a new container with size bytes of random data in its rw
// snapshot, what `ctr checkpoint --rw` (client.WithCheckpointRW: rootfs.CreateDiff, the
// diff service's Compare into a gzip'd tar in the content store) and `ctr restore --rw`
// (client.WithRestoreRW: the diff service's Apply onto the new container's snapshot) cost.
// The restore time holds the fresh snapshot's Prepare and the Apply. Everything it makes
// is removed before it returns.
func (r *runner) fsCheckpoint(b *Backend, size int64) (ckpt, restore time.Duration, retErr error) {
	timeout := r.o.CallTimeout + time.Duration(size>>20)*100*time.Millisecond
	ctx, cancel := context.WithTimeout(r.ctx, timeout)
	defer cancel()
	ctx = withNS(ctx, r.env)
	bg := withNS(context.WithoutCancel(r.ctx), r.env)
	// A lease keeps the diff's content from the garbage collector until it is applied.
	ctx, done, err := r.cl.WithLease(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer done(bg)

	id := r.id("ckpt", b)
	c, err := r.cl.NewContainer(ctx, id,
		client.WithImage(r.img),
		client.WithNewSnapshot(id+"-snap", r.img),
		r.runtimeOpt(b),
		client.WithNewSpec(oci.WithImageConfig(r.img), oci.WithProcessArgs("true")),
	)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if err := c.Delete(bg, client.WithSnapshotCleanup); err != nil && retErr == nil {
			retErr = err
		}
	}()
	info, err := c.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	sn := r.cl.SnapshotService(info.Snapshotter)
	upper, err := sn.Mounts(ctx, info.SnapshotKey)
	if err != nil {
		return 0, 0, err
	}
	if err := writeIntoMounts(upper, size); err != nil {
		return 0, 0, fmt.Errorf("write %d bytes into %s: %w", size, info.SnapshotKey, err)
	}

	t0 := time.Now()
	desc, err := rootfs.CreateDiff(ctx, info.SnapshotKey, sn, r.cl.DiffService(),
		diff.WithReference(fmt.Sprintf("checkpoint-rw-%s", info.SnapshotKey)))
	if err != nil {
		return 0, 0, fmt.Errorf("diff: %w", err)
	}
	ckpt = time.Since(t0)
	defer func() {
		if err := r.cl.ContentStore().Delete(bg, desc.Digest); err != nil && retErr == nil {
			retErr = err
		}
	}()

	st, err := sn.Stat(ctx, info.SnapshotKey)
	if err != nil {
		return 0, 0, err
	}
	rkey := id + "-restore"
	t0 = time.Now()
	mounts, err := sn.Prepare(ctx, rkey, st.Parent)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if err := sn.Remove(bg, rkey); err != nil && retErr == nil {
			retErr = err
		}
	}()
	if _, err := r.cl.DiffService().Apply(ctx, desc, mounts); err != nil {
		return 0, 0, fmt.Errorf("apply: %w", err)
	}
	restore = time.Since(t0)
	return ckpt, restore, nil
}

// writeIntoMounts mounts ms on a temporary folder and writes one file of n random bytes.
func writeIntoMounts(ms []mount.Mount, n int64) (retErr error) {
	dir, err := os.MkdirTemp("", "lxcri-bench-ckpt-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	if err := mount.All(ms, dir); err != nil {
		return err
	}
	defer func() {
		if err := mount.UnmountAll(dir, 0); err != nil && retErr == nil {
			retErr = err
		}
	}()
	f, err := os.Create(filepath.Join(dir, "ckpt-data"))
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
