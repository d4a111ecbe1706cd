//go:build linux

package zfs_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/zfs"
)

func TestParseCheckpointLeaf(t *testing.T) {
	for _, tc := range []struct {
		leaf, id, stamp string
		ok              bool
	}{
		{"ckpt-ns--c1--20260101T000000.000000001Z", "ns--c1", "20260101T000000.000000001Z", true},
		{zfs.CheckpointLeaf("a-b--c", "s1"), "a-b--c", "s1", true},
		{"ckpt-c1", "", "", false},
		{"ckpt---s", "", "", false},
		{"ckpt-c1--", "", "", false},
		{"ct-ns--c1--s", "", "", false},
		{"base-x", "", "", false},
	} {
		id, stamp, ok := zfs.ParseCheckpointLeaf(tc.leaf)
		if id != tc.id || stamp != tc.stamp || ok != tc.ok {
			t.Errorf("ParseCheckpointLeaf(%q) = %q, %q, %v; want %q, %q, %v", tc.leaf, id, stamp, ok, tc.id, tc.stamp, tc.ok)
		}
	}
}

// testCheckpoints: a checkpoint's snapshot lives in a dataset of its own from the moment
// it is taken; releasing the container keeps it, a new container of the same id starts,
// releasing a checkpoint keeps the restores made from it, and once everything is released
// nothing is left, base included.
func testCheckpoints(t *testing.T, pool string) {
	ctx := context.Background()
	s := newStore(t, pool)
	base, err := s.BaseFor(ctx, "img", func(dir string) error {
		return os.WriteFile(filepath.Join(dir, "image"), []byte("image"), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	read := func(ds, file string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(mustMountpoint(t, s, ds), file))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	write := func(ds, file, v string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(mustMountpoint(t, s, ds), file), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	snapsOf := func(ds string) []string {
		t.Helper()
		snaps, err := s.ListSnapshots(ctx, ds)
		if err != nil {
			t.Fatal(err)
		}
		return snaps
	}

	const id = "ns--c1"
	ct := s.ContainerDataset(id)
	if _, err := s.CloneForContainer(ctx, base, id); err != nil {
		t.Fatal(err)
	}
	write(ct, "state", "v1")
	snap1, err := s.KeepCheckpoint(ctx, id, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if want := s.CheckpointSnapshot(id, "s1"); snap1 != want {
		t.Errorf("KeepCheckpoint = %q, want %q", snap1, want)
	}
	if o, err := s.Origin(ctx, ct); err != nil || o != snap1 {
		t.Errorf("origin of the container = %q, %v; want its checkpoint %s", o, err, snap1)
	}
	if got := snapsOf(ct); len(got) != 0 {
		t.Errorf("the container holds snapshots %v, want none", got)
	}
	// the container runs on, mounted and writable
	write(ct, "state", "v2")
	snap2, err := s.KeepCheckpoint(ctx, id, "s2")
	if err != nil {
		t.Fatal(err)
	}
	if got := snapsOf(s.CheckpointDataset(id, "s2")); !slices.Equal(got, []string{snap2}) {
		t.Errorf("checkpoint s2 holds %v, want only %s", got, snap2)
	}
	if _, err := s.KeepCheckpoint(ctx, id, "s2"); !errdefs.IsAlreadyExists(err) {
		t.Errorf("KeepCheckpoint(same stamp) = %v, want AlreadyExists", err)
	}
	if got := snapsOf(ct); len(got) != 0 {
		t.Errorf("a failed checkpoint left %v on the container", got)
	}
	write(ct, "state", "v3")

	// restores from both
	for _, r := range []struct{ id, snap, want string }{{"ns--r1", snap1, "v1"}, {"ns--r2", snap2, "v2"}} {
		if err := s.Clone(ctx, r.snap, s.ContainerDataset(r.id), nil); err != nil {
			t.Fatal(err)
		}
		if got := read(s.ContainerDataset(r.id), "state"); got != r.want {
			t.Errorf("restore %s of %s shows %q, want %q", r.id, r.snap, got, r.want)
		}
	}

	// the container goes, its checkpoints stay, and its id starts again from the image
	if err := s.ReleaseContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	cks, err := s.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []zfs.Checkpoint{
		{ID: id, Stamp: "s1", Dataset: s.CheckpointDataset(id, "s1"), Snapshot: snap1},
		{ID: id, Stamp: "s2", Dataset: s.CheckpointDataset(id, "s2"), Snapshot: snap2},
	}
	if !slices.Equal(cks, want) {
		t.Errorf("Checkpoints = %+v, want %+v", cks, want)
	}
	if _, err := s.CloneForContainer(ctx, base, id); err != nil {
		t.Fatalf("a new container of the same id: %v", err)
	}
	if got := read(ct, "state"); !strings.HasPrefix(got, "<") {
		t.Errorf("the new container sees the old one's state %q", got)
	}
	if got := read(ct, "image"); got != "image" {
		t.Errorf("the new container sees image = %q", got)
	}

	// releasing a checkpoint keeps what was restored from it, and leaves no snapshot behind
	if err := s.ReleaseCheckpoint(ctx, s.CheckpointDataset(id, "s1")); err != nil {
		t.Fatal(err)
	}
	if got := read(s.ContainerDataset("ns--r1"), "state"); got != "v1" {
		t.Errorf("after its checkpoint was released, r1 shows %q", got)
	}
	if got := read(s.ContainerDataset("ns--r2"), "state"); got != "v2" {
		t.Errorf("after the older checkpoint was released, r2 shows %q", got)
	}
	if err := s.ReleaseCheckpoint(ctx, s.CheckpointDataset(id, "s1")); !errdefs.IsNotFound(err) {
		t.Errorf("ReleaseCheckpoint(released) = %v, want NotFound", err)
	}
	// what the promote moved stays only while a restore still uses it
	for _, ds := range []string{s.ContainerDataset("ns--r1"), s.ContainerDataset("ns--r2"), s.CheckpointDataset(id, "s2")} {
		for _, sn := range snapsOf(ds) {
			if clones, err := s.Clones(ctx, sn); sn != snap2 && (err != nil || len(clones) == 0) {
				t.Errorf("stray snapshot %s left unused (%v)", sn, err)
			}
		}
	}

	// a received container's own snapshot does not follow it into a checkpoint
	var stream bytes.Buffer
	if err := s.Send(ctx, snap2, &stream); err != nil {
		t.Fatal(err)
	}
	rx := s.ContainerDataset("ns--rx")
	if err := s.Receive(ctx, rx+"@restored", &stream); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount(ctx, rx); err != nil {
		t.Fatal(err)
	}
	snapx, err := s.KeepCheckpoint(ctx, "ns--rx", "s3")
	if err != nil {
		t.Fatal(err)
	}
	if got := snapsOf(s.CheckpointDataset("ns--rx", "s3")); !slices.Equal(got, []string{snapx}) {
		t.Errorf("the received container's checkpoint holds %v, want only %s", got, snapx)
	}

	// errors
	if _, err := s.KeepCheckpoint(ctx, "ns--nope", "s1"); !errdefs.IsNotFound(err) {
		t.Errorf("KeepCheckpoint(no container) = %v, want NotFound", err)
	}
	if _, err := s.KeepCheckpoint(ctx, id, "a--b"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("KeepCheckpoint(stamp with --) = %v, want InvalidArgument", err)
	}
	if err := s.ReleaseCheckpoint(ctx, ct); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ReleaseCheckpoint(a container) = %v, want InvalidArgument", err)
	}
	if err := s.ReleaseDataset(ctx, s.Parent); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ReleaseDataset(parent) = %v, want InvalidArgument", err)
	}

	// everything released in an order that needs promotes: nothing is left, base included
	for _, ds := range []string{s.CheckpointDataset(id, "s2"), s.ContainerDataset("ns--r1"), s.CheckpointDataset("ns--rx", "s3"),
		ct, s.ContainerDataset("ns--r2"), rx} {
		if err := s.ReleaseDataset(ctx, ds); err != nil {
			t.Fatalf("ReleaseDataset(%s): %v", ds, err)
		}
	}
	if left := below(t, s.Parent); len(left) > 0 {
		t.Errorf("left after releasing everything: %v", left)
	}
}
