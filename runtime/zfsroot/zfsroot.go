//go:build linux

// Package zfsroot puts the root filesystem of a local container (lxc and crun backends) on
// a ZFS dataset of its own, and makes checkpoints of it and restores from them.
//
// Layout (see package zfs): the image's root filesystem is populated once into the base
// dataset <parent>/base-<image key> and snapshotted; every container of that image gets a
// clone of that snapshot, <parent>/ct-<namespace>--<id>, bind-mounted at <bundle>/rootfs.
// The image key is a hash of containerd's overlay lowerdir chain (the image's layers); the
// overlay's upperdir, when not empty, is copied over the clone.
//
// A checkpoint is a snapshot of the container's dataset handed over at once to a dataset
// of the checkpoint's own, <parent>/ckpt-<namespace>--<id>--<stamp>@ckpt-<stamp> (see
// zfs.Store.KeepCheckpoint), plus a descriptor (Descriptor, lxcri-checkpoint.json)
// written into the checkpoint directory containerd packs into the checkpoint image, and
// with portable = true a `zfs send` stream of the snapshot (rootfs.zfs). The checkpoint
// outlives its container (deleting the container leaves it, and a new container of the
// same id starts on a dataset of its own) and is freed by Sweep once no checkpoint image
// names it, or by [zfs] retain. A restore clones the snapshot as the new container's
// dataset when it is a checkpoint of the restoring namespace on this host, or else
// receives the stream (see Restore).
//
// Process state: CRIU is not used. The host's `criu check` result is recorded in the
// descriptor; a restored container starts its process afresh on the restored filesystem.
package zfsroot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/zfs"
)

const (
	// DescriptorFile is the descriptor's name in a checkpoint directory.
	DescriptorFile = "lxcri-checkpoint.json"
	// StreamFile is the `zfs send` stream of a portable checkpoint.
	StreamFile = "rootfs.zfs"
	// DescriptorVersion is the version of the descriptor format this package writes.
	DescriptorVersion = 1
	// SnapshotPrefix starts the name of every checkpoint snapshot.
	SnapshotPrefix = zfs.CheckpointPrefix
	// stampLayout makes a checkpoint's stamp, its time (UTC): sorted as strings, stamps
	// are in time order.
	stampLayout = "20060102T150405.000000000Z"

	// ProcessStateNote is what every checkpoint says about the processes.
	ProcessStateNote = "process state is not saved (CRIU is not used by lxcri): a restore starts the container's process afresh on the filesystem as it was at checkpoint time"
)

// Root is the ZFS root filesystem of one container.
type Root struct {
	cfg      runtime.ZFSConfig
	store    *zfs.Store
	ns, id   string
	bundle   string
	Dataset  string
	ImageKey string
	// Mountpoint is where ZFS mounts the dataset; Target is <bundle>/rootfs, bound to it.
	Mountpoint string
	Target     string
}

func newStore(cfg *runtime.ZFSConfig) (*zfs.Store, error) {
	if cfg == nil || cfg.Dataset == "" {
		return nil, fmt.Errorf("no [zfs] dataset is configured: %w", errdefs.ErrFailedPrecondition)
	}
	if cfg.Retain < 0 {
		return nil, fmt.Errorf("[zfs] retain is %d, it must be 0 (keep all) or more: %w", cfg.Retain, errdefs.ErrInvalidArgument)
	}
	return &zfs.Store{Parent: strings.TrimSuffix(cfg.Dataset, "/")}, nil
}

// containerKey is the container part of its dataset's name, <ns>--<id>. ns and id are
// checked as containerd identifiers first (the shim gets them from its caller): these are
// alphanumeric runs joined by single '.', '_' or '-', so neither holds "--", the first
// "--" in a key ends the namespace, and no two (ns, id) pairs make the same key ("a-b" +
// "c" and "a" + "b-c" give a-b--c and a--b-c). Nor can either hold '/' or '@' and so
// reach another dataset or a snapshot.
func containerKey(ns, id string) (string, error) {
	if err := identifiers.Validate(ns); err != nil {
		return "", fmt.Errorf("namespace: %w", err)
	}
	if err := identifiers.Validate(id); err != nil {
		return "", fmt.Errorf("container id: %w", err)
	}
	return ns + "--" + id, nil
}

// ContainerDataset returns the dataset of container id of namespace ns under cfg.
func ContainerDataset(cfg *runtime.ZFSConfig, ns, id string) (string, error) {
	key, err := containerKey(ns, id)
	if err != nil {
		return "", err
	}
	return (&zfs.Store{Parent: strings.TrimSuffix(cfg.Dataset, "/")}).ContainerDataset(key), nil
}

// Setup makes container id's dataset from the image in containerd's rootfs mounts (a clone
// of the image's base, populated first when this is the image's first container) and binds
// it at <bundle>/rootfs. Nothing is left behind when it fails.
func Setup(ctx context.Context, cfg *runtime.ZFSConfig, ns, id, bundle string, mounts []*types.Mount) (_ *Root, retErr error) {
	key, err := containerKey(ns, id)
	if err != nil {
		return nil, err
	}
	st, err := newStore(cfg)
	if err != nil {
		return nil, err
	}
	if len(mounts) == 0 {
		return nil, fmt.Errorf("container %s: a ZFS root filesystem needs containerd's rootfs mounts, none were given: %w", id, errdefs.ErrInvalidArgument)
	}
	if err := st.EnsureParent(ctx); err != nil {
		return nil, fmt.Errorf("[zfs] dataset %s: %w", st.Parent, err)
	}
	ms := toMounts(mounts)
	ikey, lowers, upper := imageKey(ms)
	base, err := baseFor(ctx, st, ikey, ms, lowers)
	if err != nil {
		return nil, fmt.Errorf("base of container %s: %w", id, err)
	}
	r := &Root{cfg: *cfg, store: st, ns: ns, id: id, bundle: bundle, Dataset: st.ContainerDataset(key), ImageKey: ikey}
	mp, err := st.CloneForContainer(ctx, base, key)
	if reclaim(ctx, st, key, err) {
		mp, err = st.CloneForContainer(ctx, base, key)
	}
	if errdefs.IsNotFound(err) { // the base was released in the meantime: once more
		if base, err = baseFor(ctx, st, ikey, ms, lowers); err == nil {
			mp, err = st.CloneForContainer(ctx, base, key)
		}
	}
	if err != nil {
		return nil, err
	}
	r.Mountpoint = mp
	defer func() {
		if retErr != nil {
			r.Release(context.WithoutCancel(ctx))
		}
	}()
	if upper != "" {
		if err := copyUpper(upper, mp); err != nil {
			return nil, fmt.Errorf("copy the container's upper layer %s onto its dataset: %w", upper, err)
		}
	}
	if err := r.bind(); err != nil {
		return nil, err
	}
	return r, nil
}

func toMounts(mounts []*types.Mount) []mount.Mount {
	ms := make([]mount.Mount, 0, len(mounts))
	for _, m := range mounts {
		ms = append(ms, mount.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
	}
	return ms
}

// imageKey identifies the image of containerd's rootfs mounts: for one overlay, a hash of
// its lowerdir chain (its layers), which are returned with the upperdir; otherwise a hash
// of the mounts themselves.
func imageKey(ms []mount.Mount) (key string, lowers []string, upper string) {
	h := sha256.New()
	if len(ms) == 1 && ms[0].Type == "overlay" {
		for _, o := range ms[0].Options {
			switch {
			case strings.HasPrefix(o, "lowerdir="):
				lowers = strings.Split(strings.TrimPrefix(o, "lowerdir="), ":")
			case strings.HasPrefix(o, "upperdir="):
				upper = strings.TrimPrefix(o, "upperdir=")
			}
		}
	}
	if len(lowers) > 0 {
		fmt.Fprintf(h, "overlay\x00%s", strings.Join(lowers, "\x00"))
	} else {
		lowers, upper = nil, ""
		for _, m := range ms {
			fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", m.Type, m.Source, m.Target, strings.Join(m.Options, ","))
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:32], lowers, upper
}

// baseFor returns the image's base snapshot, populating it from the image's layers.
func baseFor(ctx context.Context, st *zfs.Store, key string, ms []mount.Mount, lowers []string) (string, error) {
	return st.BaseFor(ctx, key, func(dir string) error {
		if len(lowers) == 1 {
			return copyTree(lowers[0], dir)
		}
		tmp, err := os.MkdirTemp("", "lxcri-image-")
		if err != nil {
			return err
		}
		defer os.Remove(tmp)
		src := ms
		if len(lowers) > 1 { // the layers alone, read-only
			src = []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"ro", "lowerdir=" + strings.Join(lowers, ":")}}}
		}
		if err := mount.All(src, tmp); err != nil {
			return fmt.Errorf("mount the image at %s: %w", tmp, err)
		}
		defer mount.UnmountAll(tmp, 0)
		return copyTree(tmp, dir)
	})
}

// copyTree copies the content of src into dst, keeping owners, modes, links and times.
func copyTree(src, dst string) error {
	out, err := exec.Command("cp", "-a", "--", src+"/.", dst+"/").CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -a %s %s: %v: %s", src, dst, err, bytes.TrimSpace(out))
	}
	return nil
}

// copyUpper copies an overlay upper layer over dst, applying its whiteouts.
func copyUpper(upper, dst string) error {
	ents, err := os.ReadDir(upper)
	if err != nil || len(ents) == 0 {
		return err
	}
	if err := copyTree(upper, dst); err != nil {
		return err
	}
	return filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeCharDevice == 0 {
			return err
		}
		var s unix.Stat_t
		if unix.Lstat(p, &s) == nil && s.Rdev == 0 { // an overlay whiteout
			rel, _ := filepath.Rel(upper, p)
			return os.RemoveAll(filepath.Join(dst, rel))
		}
		return nil
	})
}

func (r *Root) bind() error {
	r.Target = filepath.Join(r.bundle, "rootfs")
	if err := os.MkdirAll(r.Target, 0o711); err != nil {
		return err
	}
	if err := unix.Mount(r.Mountpoint, r.Target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s (dataset %s) at %s: %w", r.Mountpoint, r.Dataset, r.Target, err)
	}
	return nil
}

// Release unmounts <bundle>/rootfs and destroys the container's dataset (and its base,
// when no other container uses it). It is safe when nothing is left.
func (r *Root) Release(ctx context.Context) error {
	if r.Target != "" {
		if err := mount.UnmountRecursive(r.Target, 0); err != nil {
			return fmt.Errorf("unmount %s: %w", r.Target, err)
		}
	}
	key, err := containerKey(r.ns, r.id)
	if err != nil {
		return err
	}
	return release(ctx, r.store, key)
}

// ReleaseID releases what Setup or Restore made for a container whose shim is gone.
func ReleaseID(ctx context.Context, cfg *runtime.ZFSConfig, ns, id string) error {
	key, err := containerKey(ns, id)
	if err != nil {
		return err
	}
	st, err := newStore(cfg)
	if err != nil {
		return err
	}
	return release(ctx, st, key)
}

// release releases the container's dataset: its checkpoints, and restores from them, live
// on (zfs.Store.ReleaseDataset).
func release(ctx context.Context, st *zfs.Store, key string) error {
	err := st.ReleaseContainer(ctx, key)
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// reclaim releases the dataset of container key left by an earlier container of the same
// id whose release failed, when err (of making the dataset) says it exists, and says
// whether to try again. containerd runs one task of an id per namespace, and the shim
// makes the dataset only when it creates that task: a dataset there now is a leftover.
func reclaim(ctx context.Context, st *zfs.Store, key string, err error) bool {
	if !errdefs.IsAlreadyExists(err) {
		return false
	}
	ds := st.ContainerDataset(key)
	if rerr := release(ctx, st, key); rerr != nil {
		log.G(ctx).WithError(rerr).Warnf("zfs: %s is left by an earlier container of this id and cannot be released", ds)
		return false
	}
	log.G(ctx).Warnf("zfs: released %s, left by an earlier container of this id", ds)
	return true
}

// Checkpoint snapshots the container's dataset and writes the descriptor (and, when
// portable, the send stream) into dir. backend names the container's backend. The
// snapshot is pruned to [zfs] retain. Nothing is left when it fails.
func (r *Root) Checkpoint(ctx context.Context, backend, dir string) (_ *Descriptor, retErr error) {
	if dir == "" {
		return nil, fmt.Errorf("checkpoint of %s: no checkpoint path given: %w", r.id, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint path %s: %w", dir, err)
	}
	specDigest, err := fileDigest(filepath.Join(r.bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	// what the (frozen) processes wrote must reach ZFS before the snapshot
	if f, err := os.Open(r.Mountpoint); err == nil {
		unix.Syncfs(int(f.Fd()))
		f.Close()
	}
	key, err := containerKey(r.ns, r.id)
	if err != nil {
		return nil, err
	}
	stamp := time.Now().UTC().Format(stampLayout)
	snap, err := r.store.KeepCheckpoint(ctx, key, stamp)
	if err != nil {
		return nil, err
	}
	var written []string
	defer func() {
		if retErr != nil {
			for _, f := range written {
				os.Remove(f)
			}
			r.store.ReleaseCheckpoint(context.WithoutCancel(ctx), r.store.CheckpointDataset(key, stamp))
		}
	}()
	d := &Descriptor{
		Version: DescriptorVersion, Backend: backend, ContainerID: r.id, Namespace: r.ns,
		Dataset: r.Dataset, Snapshot: snap, ImageKey: r.ImageKey, SpecDigest: specDigest,
		ProcessState: ProcessStateNote, CRIU: asNote(CRIUStatus(ctx)), Created: time.Now().UTC(),
	}
	if r.cfg.Portable {
		p := filepath.Join(dir, StreamFile)
		written = append(written, p)
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("checkpoint stream: %w", err)
		}
		err = r.store.Send(ctx, snap, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		d.Stream = StreamFile
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, DescriptorFile)
	written = append(written, p)
	if err := os.WriteFile(p, append(b, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("checkpoint descriptor: %w", err)
	}
	// what a restore would refuse is refused now, while the container is still there
	if _, err := ReadDescriptor(dir); err != nil {
		return nil, fmt.Errorf("checkpoint of %s would not restore: %w", r.id, err)
	}
	r.prune(ctx, key)
	return d, nil
}

// prune frees the oldest checkpoints of this container's id beyond [zfs] retain; what
// restored containers use of them lives on in those.
func (r *Root) prune(ctx context.Context, key string) {
	if r.cfg.Retain <= 0 {
		return
	}
	all, err := r.store.Checkpoints(ctx)
	if err != nil {
		log.G(ctx).WithError(err).Warn("zfs: list checkpoints to prune")
		return
	}
	var mine []zfs.Checkpoint
	for _, c := range all {
		if c.ID == key {
			mine = append(mine, c)
		}
	}
	for i := 0; i < len(mine)-r.cfg.Retain; i++ {
		if err := r.store.ReleaseCheckpoint(ctx, mine[i].Dataset); err != nil {
			log.G(ctx).WithError(err).Warnf("zfs: checkpoint %s is kept beyond retain = %d", mine[i].Snapshot, r.cfg.Retain)
		}
	}
}

func fileDigest(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

var criu struct {
	once   sync.Once
	status string
}

// CRIUStatus runs `criu check` once per process and says what it found; lxcri does not use
// CRIU either way.
func CRIUStatus(ctx context.Context) string {
	criu.once.Do(func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(cctx, "criu", "check").CombinedOutput()
		switch {
		case errors.Is(err, exec.ErrNotFound):
			criu.status = "criu is not installed"
		case err != nil:
			criu.status = "criu check failed: " + lastLine(string(out))
		default:
			criu.status = "criu check passed, but lxcri does not use CRIU yet"
		}
	})
	return criu.status
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
