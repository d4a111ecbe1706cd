//go:build linux

package zfsroot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lxcri/lxcri/runtime"
)

// Measurement is what MeasureCheckpoint saw for one data size.
type Measurement struct {
	// Size is how many bytes the filesystem held (one file written before the checkpoint).
	Size int64
	// Checkpoint is the time of the snapshot a checkpoint takes (syncfs included).
	Checkpoint time.Duration
	// Restore is the time of the clone a restore makes, until it is mounted.
	Restore time.Duration
	// Send is the time of the `zfs send` a portable checkpoint adds; StreamBytes its size.
	Send        time.Duration
	StreamBytes int64
}

// MeasureCheckpoint measures, under cfg's dataset, what checkpoint and restore cost at
// the ZFS level for each data size: for each, a scratch dataset is filled with size bytes
// of random data, then snapshotted (checkpoint), cloned (restore) and sent (portable
// checkpoint, to io.Discard). Everything it makes is destroyed before it returns. zfs must
// be on PATH (with zfs-fuse, integration/zfstest's translation layer first).
func MeasureCheckpoint(ctx context.Context, cfg *runtime.ZFSConfig, sizes []int64) ([]Measurement, error) {
	st, err := newStore(cfg)
	if err != nil {
		return nil, err
	}
	if err := st.EnsureParent(ctx); err != nil {
		return nil, err
	}
	var out []Measurement
	for _, size := range sizes {
		b := make([]byte, 4)
		rand.Read(b)
		src := st.Dataset("measure-" + hex.EncodeToString(b))
		m, err := measureOne(ctx, st, src, size)
		if err != nil {
			return out, fmt.Errorf("measure checkpoint of %d bytes: %w", size, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func measureOne(ctx context.Context, st storeAPI, src string, size int64) (m Measurement, retErr error) {
	m.Size = size
	if err := st.CreateDataset(ctx, src, nil); err != nil {
		return m, err
	}
	clone := src + "-restore"
	defer func() {
		cctx := context.WithoutCancel(ctx)
		if ok, _ := st.Exists(cctx, clone); ok {
			st.Destroy(cctx, clone)
		}
		if err := st.Destroy(cctx, src); err != nil && retErr == nil {
			retErr = err
		}
	}()
	mp, err := st.Mountpoint(ctx, src)
	if err != nil {
		return m, err
	}
	if err := writeRandom(filepath.Join(mp, "data"), size); err != nil {
		return m, err
	}
	t0 := time.Now()
	f, err := os.Open(mp)
	if err != nil {
		return m, err
	}
	unix.Syncfs(int(f.Fd()))
	f.Close()
	snap, err := st.Snapshot(ctx, src, SnapshotPrefix+"measure")
	if err != nil {
		return m, err
	}
	m.Checkpoint = time.Since(t0)

	t0 = time.Now()
	if err := st.Clone(ctx, snap, clone, nil); err != nil {
		return m, err
	}
	if _, err := st.Mountpoint(ctx, clone); err != nil {
		return m, err
	}
	m.Restore = time.Since(t0)

	t0 = time.Now()
	cw := &countWriter{}
	if err := st.Send(ctx, snap, cw); err != nil {
		return m, err
	}
	m.Send, m.StreamBytes = time.Since(t0), cw.n
	return m, nil
}

// storeAPI is the part of *zfs.Store measureOne uses.
type storeAPI interface {
	CreateDataset(ctx context.Context, name string, props map[string]string) error
	Snapshot(ctx context.Context, dataset, snap string) (string, error)
	Clone(ctx context.Context, snapshot, dataset string, props map[string]string) error
	Send(ctx context.Context, snapshot string, w io.Writer) error
	Destroy(ctx context.Context, name string) error
	Exists(ctx context.Context, name string) (bool, error)
	Mountpoint(ctx context.Context, dataset string) (string, error)
}

func writeRandom(p string, size int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
