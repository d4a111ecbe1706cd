//go:build linux

package zfsroot

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/lxcri/lxcri/integration/zfstest"
	"github.com/lxcri/lxcri/runtime"
)

func readState(t *testing.T, r *Root) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.Target, "state"))
	if err != nil {
		return "<none>"
	}
	return string(b)
}

// checkpointNames lists the checkpoint datasets under f's parent.
func (f *fixture) checkpointNames() []string {
	var out []string
	for _, d := range zfstest.Datasets(f.t, f.pool) {
		if strings.HasPrefix(d, f.cfg.Dataset+"/"+SnapshotPrefix) && !strings.Contains(d, "@") {
			out = append(out, d)
		}
	}
	return out
}

// TestCheckpointLifecycle: a checkpoint outlives its container, whose id starts afresh;
// Sweep keeps the live and the young ones and frees the rest, without harming what was
// restored from them; a freed checkpoint without a stream no longer restores.
func TestCheckpointLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	src := f.container("nsa", "c1", "v1\n")
	dir1, d1 := f.checkpoint(src, false)
	if !strings.HasPrefix(d1.Snapshot, f.cfg.Dataset+"/ckpt-nsa--c1--") || d1.Dataset != src.Dataset {
		t.Errorf("descriptor names %s of %s, want the checkpoint's own snapshot of %s", d1.Snapshot, d1.Dataset, src.Dataset)
	}
	os.WriteFile(filepath.Join(src.Target, "state"), []byte("v2\n"), 0o644)
	dir2, d2 := f.checkpoint(src, false)
	if err := src.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if cks := f.checkpointNames(); len(cks) != 2 {
		t.Fatalf("after the container was released the checkpoints are %v, want two", cks)
	}

	again := f.container("nsa", "c1", "")
	os.Remove(filepath.Join(again.Target, "state"))
	if got := readState(t, again); got != "<none>" {
		t.Errorf("a new container of the same id shows state %q", got)
	}
	r1, err := f.restore("nsa", "r1", dir1)
	if err != nil {
		t.Fatal(err)
	}
	if got := readState(t, r1); got != "v1\n" {
		t.Errorf("restore of the first checkpoint shows %q", got)
	}

	live := []*Descriptor{d2}
	res, err := Sweep(ctx, f.cfg, live, SweepOptions{MinAge: time.Hour})
	if err != nil || len(res.Freed) != 0 || !slices.Equal(res.Young, []string{d1.Snapshot}) || !slices.Equal(res.Live, []string{d2.Snapshot}) {
		t.Errorf("sweep sparing the young = %+v, %v", res, err)
	}
	res, err = Sweep(ctx, f.cfg, live, SweepOptions{DryRun: true})
	if err != nil || !slices.Equal(res.Freed, []string{d1.Snapshot}) || len(f.checkpointNames()) != 2 {
		t.Errorf("dry run = %+v, %v; checkpoints now %v", res, err, f.checkpointNames())
	}
	res, err = Sweep(ctx, f.cfg, live, SweepOptions{})
	if err != nil || !slices.Equal(res.Freed, []string{d1.Snapshot}) || !slices.Equal(res.Live, []string{d2.Snapshot}) {
		t.Errorf("sweep = %+v, %v; want %s freed, %s live", res, err, d1.Snapshot, d2.Snapshot)
	}
	if got := readState(t, r1); got != "v1\n" {
		t.Errorf("after its checkpoint was freed, the restore shows %q", got)
	}
	if _, err := f.restore("nsa", "r2", dir1); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "is not on this host") {
		t.Errorf("restore of a freed checkpoint = %v, want NotFound", err)
	}
	r3, err := f.restore("nsa", "r3", dir2)
	if err != nil {
		t.Fatal(err)
	}
	if got := readState(t, r3); got != "v2\n" {
		t.Errorf("restore of the live checkpoint shows %q", got)
	}
	if _, err := Sweep(ctx, nil, nil, SweepOptions{}); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("sweep without [zfs] = %v, want FailedPrecondition", err)
	}
}

// TestReclaim: a dataset left by an earlier container of the same id (its release
// failed, or its shim died before) does not stop the next container of that id, made
// from the image or restored.
func TestReclaim(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, restore := range []bool{false, true} {
		var dir string
		if restore {
			dir, _ = f.checkpoint(f.container("nsa", "src", "ckpt\n"), false)
		}
		old := f.container("nsa", "c", "old\n")
		// the old container's shim is gone: its bind is undone, its dataset stays
		if err := mount.UnmountRecursive(old.Target, 0); err != nil {
			t.Fatal(err)
		}
		var r *Root
		var err error
		if restore {
			r, err = f.restore("nsa", "c", dir)
		} else {
			r, err = Setup(ctx, f.cfg, "nsa", "c", f.bundle(), []*types.Mount{{Type: "bind", Source: f.image, Options: []string{"rbind", "ro"}}})
			if err == nil {
				t.Cleanup(func() { r.Release(ctx) })
			}
		}
		if err != nil {
			t.Fatalf("a container of a leftover's id (restore %v): %v", restore, err)
		}
		want := map[bool]string{false: "<none>", true: "ckpt\n"}[restore]
		if got := readState(t, r); got != want {
			t.Errorf("restore %v: the new container shows %q, want %q", restore, got, want)
		}
		if err := r.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRetain: retain = 1 keeps the newest checkpoint of the container's id only.
func TestRetain(t *testing.T) {
	f := newFixture(t)
	src := f.container("nsa", "c", "v1\n")
	src.cfg.Retain = 1
	_, d1 := f.checkpoint(src, false)
	_, d2 := f.checkpoint(src, false)
	cks := f.checkpointNames()
	if len(cks) != 1 || !strings.HasPrefix(d2.Snapshot, cks[0]+"@") {
		t.Errorf("with retain = 1 after two checkpoints: %v, want only %s (not %s)", cks, d2.Snapshot, d1.Snapshot)
	}
}

// TestCheckpointFails: a checkpoint that cannot be written leaves no checkpoint behind,
// and the container runs on.
func TestCheckpointFails(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	src := f.container("nsa", "c", "v1\n")
	if _, err := src.Checkpoint(ctx, "lxc", ""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("checkpoint without a path = %v, want InvalidArgument", err)
	}
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, DescriptorFile), 0o700) // the descriptor cannot be written
	if _, err := src.Checkpoint(ctx, "lxc", dir); err == nil {
		t.Error("checkpoint into a directory whose descriptor cannot be written succeeded")
	}
	src.cfg.Portable = true
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, StreamFile), nil, 0o600) // the stream exists already
	if _, err := src.Checkpoint(ctx, "lxc", dir); err == nil {
		t.Error("checkpoint over an existing stream succeeded")
	}
	if cks := f.checkpointNames(); len(cks) != 0 {
		t.Errorf("failed checkpoints left %v", cks)
	}
	if o := zget(t, src.Dataset, "origin"); !strings.Contains(o, "/base-") {
		t.Errorf("after failed checkpoints the container's origin is %s, want its base", o)
	}
	if got := readState(t, src); got != "v1\n" {
		t.Errorf("after failed checkpoints the container shows %q", got)
	}
	if _, err := Setup(ctx, &runtime.ZFSConfig{Dataset: f.cfg.Dataset, Retain: -1}, "nsa", "x", f.bundle(), nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("retain -1 = %v, want InvalidArgument", err)
	}
	if _, err := Setup(ctx, f.cfg, "nsa", "x", f.bundle(), nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("no rootfs mounts = %v, want InvalidArgument", err)
	}
}

func TestParseDescriptorLimits(t *testing.T) {
	if _, err := ParseDescriptor("x", make([]byte, MaxDescriptorSize+1)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("oversized descriptor = %v, want InvalidArgument", err)
	}
}

// TestSetupOverlay: containerd's overlay rootfs mount is read as the image (its lowerdir,
// the base) plus the container's upper layer copied over the clone, whiteouts applied;
// ReleaseID releases it by name as the shim's `delete` action does.
func TestSetupOverlay(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	upper, work := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(f.image, "gone"), []byte("deleted in the upper layer"), 0o644)
	os.WriteFile(filepath.Join(upper, "added"), []byte("upper\n"), 0o644)
	if err := unix.Mknod(filepath.Join(upper, "gone"), unix.S_IFCHR, 0); err != nil { // a whiteout
		t.Fatal(err)
	}
	ms := []*types.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + f.image, "upperdir=" + upper, "workdir=" + work}}}
	r, err := Setup(ctx, f.cfg, "nsa", "ov", f.bundle(), ms)
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"hello": "from the image\n", "added": "upper\n", "gone": "<none>"} {
		got := "<none>"
		if b, err := os.ReadFile(filepath.Join(r.Target, file)); err == nil {
			got = string(b)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	ds, err := ContainerDataset(f.cfg, "nsa", "ov")
	if err != nil || ds != r.Dataset {
		t.Errorf("ContainerDataset = %q, %v; want %q", ds, err, r.Dataset)
	}
	if err := mount.UnmountRecursive(r.Target, 0); err != nil {
		t.Fatal(err)
	}
	if err := ReleaseID(ctx, f.cfg, "nsa", "ov"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := f.exists(ds); ok {
		t.Errorf("%s survived ReleaseID", ds)
	}
	if err := ReleaseID(ctx, f.cfg, "nsa", "ov"); err != nil {
		t.Errorf("ReleaseID of a released container = %v, want nil", err)
	}
	if err := ReleaseID(ctx, f.cfg, "nsa", "a--b"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ReleaseID(bad id) = %v, want InvalidArgument", err)
	}
}
