//go:build linux

package zfsroot

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/zfs"
)

// ReceivedSnapshot names the snapshot a restore from a stream receives, whatever the
// stream or descriptor call it. It does not start with SnapshotPrefix: it is not one of
// the container's checkpoints, which prune counts.
const ReceivedSnapshot = "restored"

// Restore makes container id's dataset from the checkpoint in dir: a clone of its
// snapshot, or a receive of its stream, and binds it at <bundle>/rootfs. Nothing is left
// behind when it fails.
//
// The checkpoint image comes from containerd, which lets anyone who may import images
// hand in a crafted one, or one of another namespace. So the descriptor is checked whole
// (ReadDescriptor), and its snapshot is cloned only when it is a checkpoint of a
// container of the restoring namespace ns under this [zfs] dataset (cloneSource). A
// checkpoint with a stream (portable) restores anywhere, into another namespace or onto
// another host: the stream is data, received (CheckPlainStream: no properties, no
// descendants) into the dataset of the new container, unmounted and with the mountpoint
// this store gives it. A checkpoint without a stream restores only in its own namespace,
// from its snapshot; anything else is InvalidArgument naming the descriptor field.
func Restore(ctx context.Context, cfg *runtime.ZFSConfig, ns, id, bundle, dir string) (_ *Root, _ *Descriptor, retErr error) {
	key, err := containerKey(ns, id)
	if err != nil {
		return nil, nil, fmt.Errorf("restore: %w", err)
	}
	d, err := ReadDescriptor(dir)
	if err != nil {
		return nil, nil, err
	}
	st, err := newStore(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("restore of %s: %w", id, err)
	}
	if err := st.EnsureParent(ctx); err != nil {
		return nil, nil, fmt.Errorf("[zfs] dataset %s: %w", st.Parent, err)
	}
	src, err := cloneSource(ctx, st, ns, d)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint descriptor %s: %w", filepath.Join(dir, DescriptorFile), err)
	}
	r := &Root{cfg: *cfg, store: st, ns: ns, id: id, bundle: bundle, Dataset: st.ContainerDataset(key)}
	mk := func() error {
		if src != "" {
			return st.Clone(ctx, src, r.Dataset, nil)
		}
		return receive(ctx, st, r.Dataset, dir, d)
	}
	err = mk()
	if reclaim(ctx, st, key, err) {
		err = mk()
	}
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if retErr != nil {
			r.Release(context.WithoutCancel(ctx))
		}
	}()
	if r.Mountpoint, err = st.Mount(ctx, r.Dataset); err != nil {
		return nil, nil, err
	}
	if err := r.bind(); err != nil {
		return nil, nil, err
	}
	return r, d, nil
}

// cloneSource returns the snapshot to clone, or "" to receive the stream. The snapshot
// is judged by the parts of its name (zfs.ParseName), which ReadDescriptor has checked
// to be the checkpoint's own <parent>/ckpt-<namespace>--<container_id>--<stamp>@ckpt-<stamp>
// (or, from lxcri before checkpoints had datasets of their own, the container's
// <parent>/ct-<namespace>--<container_id>@ckpt-...): it is cloned only when <parent> is
// this store's parent (not a dataset below or beside it, which also rules out bases and
// the parent itself) and <namespace> is ns.
func cloneSource(ctx context.Context, st *zfs.Store, ns string, d *Descriptor) (string, error) {
	sn, err := zfs.ParseName(d.Snapshot, true)
	if err != nil { // ReadDescriptor checked it
		return "", fmt.Errorf("descriptor.snapshot: %w", err)
	}
	var refuse string
	switch {
	case sn.Parent != st.Parent:
		refuse = fmt.Sprintf("%s is outside [zfs] dataset %s", d.Snapshot, st.Parent)
	case d.Namespace != ns:
		refuse = fmt.Sprintf("%s is a checkpoint of namespace %q, not of the restoring namespace %q", d.Snapshot, d.Namespace, ns)
	default:
		ok, err := st.Exists(ctx, d.Snapshot)
		if err != nil {
			return "", err
		}
		if ok {
			return d.Snapshot, nil
		}
		if d.Stream == "" {
			return "", fmt.Errorf("descriptor.snapshot: checkpoint snapshot %s is not on this host (the checkpoint was freed by a sweep or [zfs] retain, or made on another host) and the checkpoint carries no stream (made with [zfs] portable = false): %w", d.Snapshot, errdefs.ErrNotFound)
		}
		return "", nil
	}
	if d.Stream == "" {
		return "", fmt.Errorf("descriptor.snapshot: %s; a checkpoint restores from its snapshot only in its own namespace under the same [zfs] dataset, elsewhere from its stream (made with [zfs] portable = true), which this one lacks: %w", refuse, errdefs.ErrInvalidArgument)
	}
	return "", nil
}

// receive receives the checkpoint's stream as dataset (at its snapshot ReceivedSnapshot).
func receive(ctx context.Context, st *zfs.Store, dataset, dir string, d *Descriptor) error {
	f, err := openRegular(filepath.Join(dir, d.Stream))
	if err != nil {
		return fmt.Errorf("descriptor.stream: checkpoint stream: %w", invalidUnlessKnown(err))
	}
	defer f.Close()
	r, err := zfs.CheckPlainStream(f)
	if err != nil {
		return fmt.Errorf("descriptor.stream: checkpoint stream %s: %w", f.Name(), invalidUnlessKnown(err))
	}
	if err := st.Receive(ctx, dataset+"@"+ReceivedSnapshot, r); err != nil {
		return fmt.Errorf("receive checkpoint %s: %w", d.Snapshot, err)
	}
	return nil
}

// invalidUnlessKnown marks err InvalidArgument: a stream that is missing or cannot be read
// is the checkpoint's fault.
func invalidUnlessKnown(err error) error {
	if errdefs.IsInvalidArgument(err) {
		return err
	}
	return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
}
