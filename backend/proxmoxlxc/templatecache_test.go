package proxmoxlxc

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/api/types"
)

// TestContentKey: an overlay of committed lower directories over an empty upper one is
// named without reading its files; another lower directory, another init, a lower
// directory made anew at the same path, or data in the upper one changes or withholds the
// name.
func TestContentKey(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	l1, l2, upper, full := mk("1/fs"), mk("2/fs"), mk("3/fs"), mk("4/fs")
	if err := os.WriteFile(filepath.Join(full, "restored"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	pause := filepath.Join(dir, "pause")
	if err := os.WriteFile(pause, []byte("PAUSE"), 0o755); err != nil {
		t.Fatal(err)
	}
	overlay := func(opts ...string) []*types.Mount {
		return []*types.Mount{{Type: "overlay", Source: "overlay", Options: opts}}
	}
	key := func(t *testing.T, mounts []*types.Mount, pause string) string {
		t.Helper()
		k, ok := contentKey(mounts, pause)
		if !ok {
			t.Fatalf("no key for %v", mounts)
		}
		return k
	}
	base := overlay("index=off", "workdir="+mk("3/work"), "upperdir="+upper, "lowerdir="+l2+":"+l1)
	k := key(t, base, pause)
	if again := key(t, overlay("upperdir="+mk("5/fs"), "lowerdir="+l2+":"+l1, "index=off", "workdir="+mk("5/work")), pause); again != k {
		t.Errorf("another empty upper directory and option order change the key")
	}

	for _, tc := range []struct {
		name   string
		mounts []*types.Mount
	}{
		{"one lower layer less", overlay("index=off", "upperdir="+upper, "lowerdir="+l1)},
		{"layers in another order", overlay("index=off", "upperdir="+upper, "lowerdir="+l1+":"+l2)},
		{"another option", overlay("index=off", "upperdir="+upper, "lowerdir="+l2+":"+l1, "uidmap=0:100000:65536")},
	} {
		if other := key(t, tc.mounts, pause); other == k {
			t.Errorf("%s: same key", tc.name)
		}
	}

	for _, tc := range []struct {
		name   string
		mounts []*types.Mount
	}{
		{"data in the upper directory", overlay("upperdir="+full, "lowerdir="+l2+":"+l1)},
		{"upper directory missing", overlay("upperdir="+filepath.Join(dir, "gone"), "lowerdir="+l1)},
		{"lower directory missing", overlay("upperdir="+upper, "lowerdir="+filepath.Join(dir, "gone"))},
		{"relative lower directory", overlay("upperdir="+upper, "lowerdir=1/fs")},
		{"no lower directory", overlay("upperdir=" + upper)},
		{"bind mount", []*types.Mount{{Type: "bind", Source: l1, Options: []string{"rbind", "rw"}}}},
		{"two mounts", append(overlay("upperdir="+upper, "lowerdir="+l1), overlay("upperdir="+upper, "lowerdir="+l2)...)},
		{"no mounts", nil},
	} {
		if _, ok := contentKey(tc.mounts, pause); ok {
			t.Errorf("%s: a key", tc.name)
		}
	}

	// A store wiped and filled anew hands out the same path for another layer.
	if err := os.RemoveAll(l1); err != nil {
		t.Fatal(err)
	}
	mk("1/fs")
	if other := key(t, base, pause); other == k {
		t.Errorf("a lower directory made anew at the same path keeps the key")
	}
	k = key(t, base, pause)
	if err := os.WriteFile(pause, []byte("PAUSE, a new build"), 0o755); err != nil {
		t.Fatal(err)
	}
	if other := key(t, base, pause); other == k {
		t.Errorf("a new init keeps the key")
	}
}

// TestTemplateCache: an entry reads back as written; a missing or damaged one is a miss.
func TestTemplateCache(t *testing.T) {
	c := templateCache{dir: filepath.Join(t.TempDir(), "templates")}
	if _, ok := c.get("k"); ok {
		t.Fatal("hit in an empty cache")
	}
	want := cachedTemplate{VolID: "local:vztmpl/lxcri-x.tar", GiB: 1}
	if err := c.put("k", want); err != nil {
		t.Fatal(err)
	}
	if got, ok := c.get("k"); !ok || got != want {
		t.Fatalf("got %+v %v, want %+v", got, ok, want)
	}
	if err := os.WriteFile(filepath.Join(c.dir, "bad"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.get("bad"); ok {
		t.Fatal("hit on a damaged entry")
	}
}
