package zfs

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	gozfs "github.com/mistifyio/go-zfs/v4"
)

// A checkpoint's storage belongs to the checkpoint, not to the container: KeepCheckpoint
// snapshots the container's dataset and at once hands the snapshot over to a dataset of
// the checkpoint's own, <parent>/ckpt-<id>--<stamp>, holding the single snapshot
// ckpt-<stamp> (a clone of the snapshot, promoted: the container's dataset becomes a clone
// of it). So the container's dataset never holds a checkpoint and goes with the
// container, the checkpoint survives it, and a new container of the same id starts on a
// dataset of its own. A checkpoint lives until ReleaseCheckpoint.
//
// Datasets depend on each other only through clones, and ReleaseDataset keeps those
// alive: a dataset whose snapshot has clones is destroyed once one of them is promoted
// (it takes the snapshot over). A snapshot moved that way is stray (not the proper
// snapshot of the dataset that now holds it: base-<key>@base, ckpt-<id>--<stamp>@ckpt-<stamp>)
// and is destroyed as soon as no clone uses it.

const (
	// CheckpointPrefix starts the name of every checkpoint's dataset and snapshot.
	CheckpointPrefix = "ckpt-"
	// checkpointSep separates a checkpoint dataset's container id from its stamp. Callers'
	// ids hold no "--" after their first (see ParseCheckpointLeaf).
	checkpointSep = "--"
)

// CheckpointLeaf is the last component of the dataset of checkpoint stamp of container id.
func CheckpointLeaf(id, stamp string) string {
	return CheckpointPrefix + id + checkpointSep + stamp
}

// CheckpointDataset is the dataset of checkpoint stamp of container id.
func (s *Store) CheckpointDataset(id, stamp string) string {
	return s.Dataset(CheckpointLeaf(id, stamp))
}

// CheckpointSnapshot is the snapshot that holds checkpoint stamp of container id.
func (s *Store) CheckpointSnapshot(id, stamp string) string {
	return s.CheckpointDataset(id, stamp) + "@" + CheckpointPrefix + stamp
}

// ParseCheckpointLeaf splits a checkpoint dataset's last component into the container id
// and the stamp: the stamp follows the last "--" (stamps hold none).
func ParseCheckpointLeaf(leaf string) (id, stamp string, ok bool) {
	rest, ok := strings.CutPrefix(leaf, CheckpointPrefix)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, checkpointSep)
	if i <= 0 || i+len(checkpointSep) == len(rest) {
		return "", "", false
	}
	return rest[:i], rest[i+len(checkpointSep):], true
}

// Checkpoint is one checkpoint dataset of a Store.
type Checkpoint struct {
	// ID is the container id (the Store's key, e.g. <namespace>--<id>) and Stamp the
	// checkpoint's stamp, as given to KeepCheckpoint.
	ID, Stamp string
	// Dataset holds the checkpoint; Snapshot is its proper snapshot (what restores clone).
	Dataset, Snapshot string
}

// KeepCheckpoint takes checkpoint stamp of container id: the snapshot
// <container>@ckpt-<stamp>, handed over to the checkpoint's own dataset (see above), and
// returns that snapshot's name, CheckpointSnapshot(id, stamp). The container's dataset
// stays mounted and in use throughout. Nothing is left when it fails.
func (s *Store) KeepCheckpoint(ctx context.Context, id, stamp string) (string, error) {
	const op = "checkpoint"
	ct := s.ContainerDataset(id)
	ck := s.CheckpointDataset(id, stamp)
	name := CheckpointPrefix + stamp
	if err := checkComponent(id); err != nil {
		return "", invalid(op, ct, "bad container id: "+err.Error())
	}
	if err := checkComponent(stamp); err != nil || strings.Contains(stamp, checkpointSep) {
		return "", invalid(op, ck, fmt.Sprintf("bad checkpoint stamp %q", stamp))
	}
	if err := s.check(op, ck+"@"+name, true); err != nil {
		return "", err
	}
	before, err := s.ListSnapshots(ctx, ct)
	if err != nil {
		return "", err
	}
	snap, err := s.Snapshot(ctx, ct, name)
	if err != nil {
		return "", err
	}
	if err := s.Clone(ctx, snap, ck, map[string]string{"canmount": "off"}); err != nil {
		s.destroyLeftover(snap)
		return "", err
	}
	if err := s.Promote(ctx, ck); err != nil {
		s.destroyClone(ck, snap)
		s.destroyLeftover(snap)
		return "", err
	}
	// what else the promote moved (older snapshots of the container) is of no use there
	s.dropStrays(ctx, ck, before)
	return ck + "@" + name, nil
}

// ReleaseCheckpoint frees the checkpoint whose dataset is dataset (see Checkpoints):
// ReleaseDataset. NotFound when it is gone.
func (s *Store) ReleaseCheckpoint(ctx context.Context, dataset string) error {
	const op = "release checkpoint"
	if err := s.check(op, dataset, false); err != nil {
		return err
	}
	n, _ := ParseName(dataset, false)
	if _, _, ok := ParseCheckpointLeaf(n.Leaf); !ok || n.Parent != s.Parent {
		return invalid(op, dataset, "not a checkpoint dataset of "+s.Parent)
	}
	return s.ReleaseDataset(ctx, dataset)
}

// Checkpoints lists the checkpoint datasets below Parent, oldest stamp first within an id.
func (s *Store) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	names, err := s.Children(ctx)
	if err != nil {
		return nil, err
	}
	var out []Checkpoint
	for _, n := range names {
		leaf := strings.TrimPrefix(n, s.Parent+"/")
		if id, stamp, ok := ParseCheckpointLeaf(leaf); ok {
			out = append(out, Checkpoint{ID: id, Stamp: stamp, Dataset: n, Snapshot: n + "@" + CheckpointPrefix + stamp})
		}
	}
	slices.SortFunc(out, func(a, b Checkpoint) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Stamp, b.Stamp)
	})
	return out, nil
}

// Children returns the filesystems directly below Parent.
func (s *Store) Children(ctx context.Context) ([]string, error) {
	const op = "list"
	if err := s.check(op, s.Parent, false); err != nil {
		return nil, err
	}
	ds, err := s.do2(ctx, op, s.Parent, func() ([]*gozfs.Dataset, error) { return gozfs.Filesystems(s.Parent) })
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range ds {
		if rest, ok := strings.CutPrefix(d.Name, s.Parent+"/"); ok && !strings.Contains(rest, "/") {
			out = append(out, d.Name)
		}
	}
	return out, nil
}

// ReleaseDataset destroys dataset with its snapshots, keeping whatever is cloned from
// them: while a snapshot of it has clones, one of them is promoted and takes the
// snapshots over. Afterwards the snapshots so moved and dataset's origin are destroyed
// when stray and unused, and its origin's base when no container uses it any more.
// NotFound when dataset does not exist.
func (s *Store) ReleaseDataset(ctx context.Context, dataset string) error {
	const op = "release"
	if err := s.check(op, dataset, false); err != nil {
		return err
	}
	if dataset == s.Parent {
		return invalid(op, dataset, "the store's parent")
	}
	var moved []movedSnapshots
	for i := 0; ; i++ {
		origin, err := s.Origin(ctx, dataset)
		if err != nil {
			return err
		}
		snaps, err := s.ListSnapshots(ctx, dataset)
		if err != nil {
			return err
		}
		err = s.Destroy(ctx, dataset)
		if err == nil {
			for _, m := range moved {
				s.dropStrays(ctx, m.to, m.names)
			}
			s.releaseOrigin(ctx, origin)
			return nil
		}
		if i >= maxPromotes || !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "dependent clones") {
			return err
		}
		to, perr := s.promoteDependent(ctx, snaps)
		if perr != nil {
			return fmt.Errorf("%w; and %w", err, perr)
		}
		moved = append(moved, movedSnapshots{to: to, names: snaps})
	}
}

// maxPromotes bounds ReleaseDataset's promotes: each moves at least one snapshot away, so
// a dataset with more snapshots than this is released by a second call.
const maxPromotes = 64

type movedSnapshots struct {
	to    string
	names []string
}

// promoteDependent promotes a clone of the newest of snaps that has clones and returns it.
func (s *Store) promoteDependent(ctx context.Context, snaps []string) (string, error) {
	for i := len(snaps) - 1; i >= 0; i-- {
		clones, err := s.Clones(ctx, snaps[i])
		if err != nil {
			return "", err
		}
		if len(clones) > 0 {
			return clones[0], s.Promote(ctx, clones[0])
		}
	}
	return "", &Error{Op: "release", Name: strings.Join(snaps, ","), Msg: "no clone of its snapshots found to promote", Kind: errdefs.ErrFailedPrecondition}
}

// dropStrays destroys the snapshots of dataset named like those of names (full names of
// another dataset's snapshots, which a promote moved) that are stray and unused.
func (s *Store) dropStrays(ctx context.Context, dataset string, names []string) {
	for _, n := range names {
		_, short, _ := strings.Cut(n, "@")
		s.dropStray(ctx, dataset+"@"+short)
	}
}

// releaseOrigin destroys what origin (a released dataset's origin, "" for none) names when
// nothing uses it any more: a base's dataset, or a stray snapshot.
func (s *Store) releaseOrigin(ctx context.Context, origin string) {
	switch {
	case origin == "":
	case s.isBase(origin):
		s.releaseBase(ctx, origin)
	default:
		s.dropStray(ctx, origin)
	}
}

// dropStray destroys snapshot when it is stray and has no clones; errors are of no
// consequence (it stays, and is dropped the next time).
func (s *Store) dropStray(ctx context.Context, snapshot string) {
	if !s.isStray(snapshot) {
		return
	}
	if clones, err := s.Clones(ctx, snapshot); err != nil || len(clones) > 0 {
		return
	}
	_ = s.Destroy(ctx, snapshot)
}

// isStray says whether snapshot, below Parent, is not the proper snapshot of its dataset
// (see above). It is asked only of snapshots a promote moved and of released datasets'
// origins, never of a container's own snapshots in place (a checkpoint in progress has one
// for a moment).
func (s *Store) isStray(snapshot string) bool {
	n, err := ParseName(snapshot, true)
	if err != nil || n.Parent != s.Parent {
		return false
	}
	if _, stamp, ok := ParseCheckpointLeaf(n.Leaf); ok {
		return n.Snapshot != CheckpointPrefix+stamp
	}
	return !s.isBase(snapshot)
}

// Origin returns the snapshot dataset is a clone of, "" when it is none.
func (s *Store) Origin(ctx context.Context, dataset string) (string, error) {
	const op = "origin"
	if err := s.check(op, dataset, false); err != nil {
		return "", err
	}
	o, err := s.property(ctx, op, dataset, "origin")
	if err != nil {
		return "", err
	}
	if o == "-" {
		o = ""
	}
	return o, nil
}

// Clones returns the datasets that are clones of snapshot.
func (s *Store) Clones(ctx context.Context, snapshot string) ([]string, error) {
	const op = "clones"
	if err := s.check(op, snapshot, true); err != nil {
		return nil, err
	}
	v, err := s.property(ctx, op, snapshot, "clones")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range strings.Split(v, ",") {
		if c = strings.TrimSpace(c); c != "" && c != "-" {
			out = append(out, c)
		}
	}
	return out, nil
}

// Promote promotes the clone dataset: it takes over its origin's snapshots up to that
// origin, and its origin's dataset becomes a clone of it. go-zfs has no promote, so this
// runs `zfs promote` itself; "dataset is busy" is retried as in Destroy.
func (s *Store) Promote(ctx context.Context, dataset string) error {
	const op = "promote"
	if err := s.check(op, dataset, false); err != nil {
		return err
	}
	return s.retryBusy(ctx, op, dataset, func() error {
		var stderr bytes.Buffer
		cmd := exec.Command("zfs", "promote", dataset)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return &gozfs.Error{Err: err, Debug: "zfs promote " + dataset, Stderr: stderr.String()}
		}
		return nil
	})
}
