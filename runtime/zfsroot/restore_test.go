//go:build linux

package zfsroot

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/integration/zfstest"
	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/zfs"
)

// fixture is a container on a real pool, as the shim makes it, without containerd: an
// "image" folder bound as its rootfs mount, a bundle with a config.json.
type fixture struct {
	t     *testing.T
	pool  string
	cfg   *runtime.ZFSConfig
	image string
}

func newFixture(t *testing.T) *fixture {
	pool, _ := zfstest.Pool(t)
	f := &fixture{t: t, pool: pool, cfg: &runtime.ZFSConfig{Dataset: pool + "/lxcri"}, image: t.TempDir()}
	if err := os.WriteFile(filepath.Join(f.image, "hello"), []byte("from the image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// after every test's own cleanup (registered later, run earlier), before the pool's:
	// with no checkpoint wanted any more, a sweep leaves nothing
	t.Cleanup(func() {
		if _, err := Sweep(context.Background(), f.cfg, nil, SweepOptions{}); err != nil {
			t.Errorf("sweep: %v", err)
		}
		for _, d := range zfstest.Datasets(t, pool) {
			if d != pool && d != pool+"/lxcri" {
				t.Errorf("left behind: %s", d)
			}
		}
	})
	return f
}

func (f *fixture) bundle() string {
	b := f.t.TempDir()
	if err := os.WriteFile(filepath.Join(b, "config.json"), []byte(`{"ociVersion":"1.0.2"}`), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return b
}

// container sets up container ns/id, writes content into it, and returns it (released at
// the end of the test).
func (f *fixture) container(ns, id, content string) *Root {
	f.t.Helper()
	r, err := Setup(context.Background(), f.cfg, ns, id, f.bundle(),
		[]*types.Mount{{Type: "bind", Source: f.image, Options: []string{"rbind", "ro"}}})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { r.Release(context.Background()) })
	if err := os.WriteFile(filepath.Join(r.Target, "state"), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return r
}

// checkpoint checkpoints r into a new directory, with a stream when portable.
func (f *fixture) checkpoint(r *Root, portable bool) (string, *Descriptor) {
	f.t.Helper()
	dir := f.t.TempDir()
	r.cfg.Portable = portable
	d, err := r.Checkpoint(context.Background(), "lxc", dir)
	if err != nil {
		f.t.Fatal(err)
	}
	return dir, d
}

// restore restores ns/id from dir; a restored root is released at the end of the test.
func (f *fixture) restore(ns, id, dir string) (*Root, error) {
	r, _, err := Restore(context.Background(), f.cfg, ns, id, f.bundle(), dir)
	if err == nil {
		f.t.Cleanup(func() { r.Release(context.Background()) })
	}
	return r, err
}

func zget(t *testing.T, name, prop string) string {
	t.Helper()
	out, err := exec.Command("zfs", "get", "-H", "-o", "value", prop, name).CombinedOutput()
	if err != nil {
		t.Fatalf("zfs get %s %s: %v: %s", prop, name, err, out)
	}
	return strings.TrimSpace(string(out))
}

func zfsOK(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("zfs", args...).CombinedOutput(); err != nil {
		t.Fatalf("zfs %v: %v: %s", args, err, out)
	}
}

// TestRestoreNamespace: a checkpoint restores from its snapshot in its own namespace; in
// another, only from its stream (received into that namespace's own dataset, at the
// store's mountpoint), never from the other namespace's snapshot.
func TestRestoreNamespace(t *testing.T) {
	f := newFixture(t)
	src := f.container("nsa", "src", "v1\n")
	local, _ := f.checkpoint(src, false)
	portable, _ := f.checkpoint(src, true)

	t.Run("own namespace clones", func(t *testing.T) {
		r, err := f.restore("nsa", "dst", local)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(r.Target, "state")); string(b) != "v1\n" {
			t.Errorf("restored state = %q", b)
		}
		if o := zget(t, r.Dataset, "origin"); !strings.HasPrefix(o, f.cfg.Dataset+"/"+SnapshotPrefix+"nsa--src--") {
			t.Errorf("origin of the restore = %q, want a checkpoint of %s", o, src.Dataset)
		}
		if err := r.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("other namespace refused", func(t *testing.T) {
		_, err := f.restore("nsb", "dst", local)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "descriptor.snapshot") || !strings.Contains(err.Error(), `namespace "nsa"`) {
			t.Errorf("restore in nsb of nsa's checkpoint = %v, want InvalidArgument naming descriptor.snapshot and nsa", err)
		}
		if ok, _ := f.exists(f.cfg.Dataset + "/ct-nsb--dst"); ok {
			t.Error("the refused restore left its dataset")
		}
	})
	t.Run("other namespace receives the stream", func(t *testing.T) {
		r, err := f.restore("nsb", "dst", portable)
		if err != nil {
			t.Fatal(err)
		}
		if want := f.cfg.Dataset + "/ct-nsb--dst"; r.Dataset != want {
			t.Errorf("restored into %s, want %s", r.Dataset, want)
		}
		if o := zget(t, r.Dataset, "origin"); o != "-" {
			t.Errorf("origin of the restore = %q, want none (received, not a clone of nsa's snapshot)", o)
		}
		if want := filepath.Join(zget(t, f.cfg.Dataset, "mountpoint"), "ct-nsb--dst"); r.Mountpoint != want || zget(t, r.Dataset, "mountpoint") != want {
			t.Errorf("mountpoint %q (zfs: %q), want %q", r.Mountpoint, zget(t, r.Dataset, "mountpoint"), want)
		}
		if snaps, _ := r.store.ListSnapshots(context.Background(), r.Dataset); !slices.Equal(snaps, []string{r.Dataset + "@" + ReceivedSnapshot}) {
			t.Errorf("snapshots of the restore: %v, want only @%s", snaps, ReceivedSnapshot)
		}
		if b, _ := os.ReadFile(filepath.Join(r.Target, "state")); string(b) != "v1\n" {
			t.Errorf("restored state = %q", b)
		}
		if err := r.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

func (f *fixture) exists(name string) (bool, error) {
	st, err := newStore(f.cfg)
	if err != nil {
		return false, err
	}
	return st.Exists(context.Background(), name)
}

// TestRestoreRefused: a descriptor that names anything but a checkpoint of the restoring
// namespace's containers under the store's parent, or that is malformed in any field, is
// InvalidArgument naming the field, and leaves nothing behind.
func TestRestoreRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	src := f.container("nsa", "src", "v1\n")
	_, good := f.checkpoint(src, false)
	other := f.container("nsb", "other", "secret of nsb\n")
	otherDir, otherD := f.checkpoint(other, false)
	parent := f.cfg.Dataset
	base := parent + "/base-" + src.ImageKey

	// a dataset beside the parent whose name begins with the parent's, and one below a
	// container's dataset, each with a checkpoint-like snapshot of a container of nsa
	beside := f.pool + "/lxcri-x/ct-nsa--src"
	below := src.Dataset + "/ct-nsa--src"
	ps := &zfs.Store{Parent: f.pool, BusyTimeout: 15 * time.Second}
	for _, ds := range []string{beside, below} {
		zfsOK(t, "create", "-p", ds)
		zfsOK(t, "snapshot", ds+"@ckpt-1")
	}
	t.Cleanup(func() {
		for _, ds := range []string{below, f.pool + "/lxcri-x"} {
			if err := ps.Destroy(ctx, ds); err != nil {
				t.Error(err)
			}
		}
	})

	// stream files: one with properties (zfs send -p), one a symbolic link to a host file
	propStream := t.TempDir()
	var pstream bytes.Buffer
	cmd := exec.Command("zfs", "send", "-p", good.Snapshot)
	cmd.Stdout = &pstream
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(propStream, StreamFile), pstream.Bytes(), 0o600)
	linkStream := t.TempDir()
	os.Symlink("/etc/hostname", filepath.Join(linkStream, StreamFile))

	tmpl := map[string]any{}
	b, _ := json.Marshal(good)
	json.Unmarshal(b, &tmpl)
	with := func(kv ...any) map[string]any {
		m := maps.Clone(tmpl)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	null := json.RawMessage("null")
	for _, tc := range []struct {
		name  string
		desc  any    // the descriptor (marshalled), or
		raw   string // its bytes
		dir   string // the checkpoint directory holding other files (stream)
		field string // named in the error
	}{
		{name: "other namespace's snapshot", desc: otherD, dir: otherDir, field: "descriptor.snapshot"},
		{name: "other namespace's snapshot, namespace forged", desc: with("dataset", other.Dataset, "snapshot", otherD.Snapshot), field: "descriptor.dataset"},
		{name: "base snapshot", desc: with("dataset", base, "snapshot", base+"@base"), field: "descriptor.dataset"},
		{name: "base dataset, checkpoint-like snapshot", desc: with("dataset", base, "snapshot", base+"@ckpt-1"), field: "descriptor.dataset"},
		{name: "the parent", desc: with("dataset", parent, "snapshot", parent+"@ckpt-1"), field: "descriptor.dataset"},
		{name: "beside the parent", desc: with("dataset", beside, "snapshot", beside+"@ckpt-1"), field: "descriptor.snapshot"},
		{name: "below a container", desc: with("dataset", below, "snapshot", below+"@ckpt-1"), field: "descriptor.snapshot"},
		{name: "another pool", desc: with("dataset", "tank/lxcri/ct-nsa--src", "snapshot", "tank/lxcri/ct-nsa--src@ckpt-1"), field: "descriptor.snapshot"},
		{name: "pool only", desc: with("dataset", "ct-nsa--src", "snapshot", "ct-nsa--src@ckpt-1"), field: "descriptor.dataset"},
		{name: "snapshot of another dataset", desc: with("snapshot", other.Dataset+"@ckpt-1"), field: "descriptor.snapshot"},
		{name: "checkpoint of another container", desc: with("snapshot", parent+"/ckpt-nsa--other--s1@ckpt-s1"), field: "descriptor.snapshot"},
		{name: "checkpoint of another namespace", desc: with("snapshot", parent+"/ckpt-nsb--src--s1@ckpt-s1"), field: "descriptor.snapshot"},
		{name: "checkpoint of another stamp", desc: with("snapshot", parent+"/ckpt-nsa--src--s1@ckpt-s2"), field: "descriptor.snapshot"},
		{name: "checkpoint beside the parent", desc: with("snapshot", f.pool+"/lxcri-x/ckpt-nsa--src--s1@ckpt-s1"), field: "descriptor.snapshot"},
		{name: "checkpoint without stamp", desc: with("snapshot", parent+"/ckpt-nsa--src@ckpt-"), field: "descriptor.snapshot"},
		{name: "not a checkpoint snapshot", desc: with("snapshot", src.Dataset+"@base"), field: "descriptor.snapshot"},
		{name: "snapshot not a snapshot", desc: with("snapshot", src.Dataset), field: "descriptor.snapshot"},
		{name: "snapshot with a blank", desc: with("snapshot", src.Dataset+"@ckpt 1"), field: "descriptor.snapshot"},
		{name: "snapshot with two @", desc: with("snapshot", src.Dataset+"@ckpt-1@x"), field: "descriptor.snapshot"},
		{name: "dataset with ..", desc: with("dataset", parent+"/../ct-nsa--src"), field: "descriptor.dataset"},
		{name: "dataset with //", desc: with("dataset", parent+"//ct-nsa--src"), field: "descriptor.dataset"},
		{name: "dataset too long", desc: with("dataset", parent+"/"+strings.Repeat("a", 250)), field: "descriptor.dataset"},
		{name: "dataset a snapshot", desc: with("dataset", good.Snapshot), field: "descriptor.dataset"},
		{name: "namespace with --", desc: with("namespace", "nsa--x"), field: "descriptor.namespace"},
		{name: "container id with /", desc: with("container_id", "a/b"), field: "descriptor.container_id"},
		{name: "empty backend", desc: with("backend", ""), field: "descriptor.backend"},
		{name: "bad version", desc: with("version", 2), field: "descriptor.version"},
		{name: "version a string", desc: with("version", "1"), field: "descriptor.version"},
		{name: "no version", desc: with("version", nil), field: "descriptor.version"},
		{name: "no snapshot", desc: with("snapshot", nil), field: "descriptor.snapshot"},
		{name: "null stream", desc: with("stream", null), field: "descriptor.stream"},
		{name: "stream elsewhere", desc: with("stream", "../../etc/shadow"), field: "descriptor.stream"},
		{name: "stream with properties", desc: with("namespace", "nsb", "container_id", "other", "dataset", other.Dataset, "snapshot", otherD.Snapshot, "stream", StreamFile), dir: propStream, field: "descriptor.stream"},
		{name: "stream a symbolic link", desc: with("namespace", "nsb", "container_id", "other", "dataset", other.Dataset, "snapshot", otherD.Snapshot, "stream", StreamFile), dir: linkStream, field: "descriptor.stream"},
		{name: "stream missing", desc: with("namespace", "nsb", "container_id", "other", "dataset", other.Dataset, "snapshot", otherD.Snapshot, "stream", StreamFile), field: "descriptor.stream"},
		{name: "bad spec digest", desc: with("spec_digest", "md5:x"), field: "descriptor.spec_digest"},
		{name: "bad image key", desc: with("image_key", "../x"), field: "descriptor.image_key"},
		{name: "bad created", desc: with("created", "yesterday"), field: "descriptor.created"},
		{name: "control character in a note", desc: with("criu", "ok\nlxc.hook.pre-start=x"), field: "descriptor.criu"},
		{name: "unknown field", desc: with("origin", parent+"/x@y"), field: "descriptor.origin"},
		{name: "field in another case", desc: with("Snapshot", otherD.Snapshot), field: `descriptor."Snapshot"`},
		{name: "not an object", raw: `[1]`, field: "is corrupt"},
		{name: "two objects", raw: `{"version":1} {}`, field: "is corrupt"},
		{name: "too large", raw: `{"criu":"` + strings.Repeat("x", maxDescriptorSize) + `"}`, field: "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir
			if dir == "" {
				dir = t.TempDir()
			} else { // a copy: the descriptor is replaced
				cp := t.TempDir()
				if out, err := exec.Command("cp", "-a", dir+"/.", cp).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v: %s", err, out)
				}
				dir = cp
			}
			raw := []byte(tc.raw)
			if tc.desc != nil {
				raw, _ = json.Marshal(tc.desc)
			}
			if err := os.WriteFile(filepath.Join(dir, DescriptorFile), raw, 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := f.restore("nsa", "dst", dir)
			t.Logf("restore: %v", err)
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("restore = %v, want InvalidArgument naming %s", err, tc.field)
			}
			if r != nil {
				r.Release(ctx)
			}
			if ok, _ := f.exists(parent + "/ct-nsa--dst"); ok {
				t.Error("the refused restore left its dataset")
			}
		})
	}

	t.Run("descriptor a symbolic link", func(t *testing.T) {
		dir := t.TempDir()
		os.Symlink("/etc/hostname", filepath.Join(dir, DescriptorFile))
		if _, err := f.restore("nsa", "dst", dir); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("restore = %v, want InvalidArgument saying symbolic link", err)
		}
	})
	t.Run("bad restoring names", func(t *testing.T) {
		for _, nsid := range [][2]string{{"nsa--x", "dst"}, {"nsa", "a--b"}, {"nsa", "../x"}, {"", "dst"}, {"nsa", "a@b"}} {
			if _, err := f.restore(nsid[0], nsid[1], otherDir); !errdefs.IsInvalidArgument(err) {
				t.Errorf("restore as %q/%q = %v, want InvalidArgument", nsid[0], nsid[1], err)
			}
		}
	})
}

// TestContainerKey: namespace and id are containerd identifiers, and so the key is
// unambiguous.
func TestContainerKey(t *testing.T) {
	a, err1 := containerKey("a-b", "c")
	b, err2 := containerKey("a", "b-c")
	if err1 != nil || err2 != nil || a == b {
		t.Errorf("keys %q, %q (%v, %v): want two different keys", a, b, err1, err2)
	}
	for _, nsid := range [][2]string{{"a--b", "c"}, {"a", "b--c"}, {"a/b", "c"}, {"a", "b@c"}, {"", "c"}, {"a", ""}, {"a", strings.Repeat("x", 77)}, {"-a", "b"}} {
		if k, err := containerKey(nsid[0], nsid[1]); !errdefs.IsInvalidArgument(err) {
			t.Errorf("containerKey(%q, %q) = %q, %v; want InvalidArgument", nsid[0], nsid[1], k, err)
		}
	}
}
