//go:build linux

package zfstest_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gozfs "github.com/mistifyio/go-zfs/v4"

	"github.com/lxcri/lxcri/integration/zfstest"
)

// TestGoZFS drives every go-zfs v4 call but Diff (zfs-fuse has no `zfs diff`) through the
// translation layer.
func TestGoZFS(t *testing.T) {
	pool, _ := zfstest.Pool(t)
	mnt := zfstest.Mountpoint(t, pool)

	p, err := gozfs.GetZpool(pool)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != pool || p.Health != gozfs.ZpoolOnline || p.Size < 400<<20 || p.Free == 0 || p.DedupRatio != 1 {
		t.Errorf("GetZpool = %+v", p)
	}
	pools, err := gozfs.ListZpools()
	if err != nil || !slices.ContainsFunc(pools, func(z *gozfs.Zpool) bool { return z.Name == pool }) {
		t.Errorf("ListZpools = %v, %v; want %s among them", pools, err, pool)
	}

	fs, err := gozfs.CreateFilesystem(pool+"/fs", map[string]string{"compression": "on"})
	if err != nil {
		t.Fatal(err)
	}
	if fs.Name != pool+"/fs" || fs.Type != gozfs.DatasetFilesystem || fs.Compression != "on" ||
		fs.Mountpoint != filepath.Join(mnt, "fs") || fs.Used == 0 || fs.Avail == 0 || fs.Referenced == 0 {
		t.Errorf("CreateFilesystem = %+v", fs)
	}
	if err := os.WriteFile(filepath.Join(fs.Mountpoint, "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := fs.Snapshot("s1", false)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Type != gozfs.DatasetSnapshot || snap.Name != pool+"/fs@s1" {
		t.Errorf("Snapshot = %+v", snap)
	}
	clone, err := snap.Clone(pool+"/clone", nil)
	if err != nil {
		t.Fatal(err)
	}
	if clone.Origin != snap.Name {
		t.Errorf("Clone origin = %q, want %q", clone.Origin, snap.Name)
	}
	if v, err := snap.GetProperty("clones"); err != nil || v != clone.Name {
		t.Errorf("clones = %q, %v; want %q", v, err, clone.Name)
	}
	if v, err := fs.GetProperty("written"); err != nil || v != "-" {
		t.Errorf("written (unknown to zfs-fuse) = %q, %v; want -", v, err)
	}
	if v, err := fs.GetProperty("compression"); err != nil || v != "on" {
		t.Errorf("compression = %q, %v", v, err)
	}
	if err := fs.SetProperty("lxcri:note", "x"); err != nil {
		t.Fatal(err)
	}

	all, err := gozfs.Datasets(pool)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range all {
		names = append(names, d.Name)
	}
	if want := []string{pool, pool + "/clone", pool + "/fs", pool + "/fs@s1"}; !slices.Equal(names, want) {
		t.Errorf("Datasets = %v, want %v", names, want)
	}
	if snaps, err := gozfs.Snapshots(pool); err != nil || len(snaps) != 1 || snaps[0].Name != snap.Name {
		t.Errorf("Snapshots = %v, %v", snaps, err)
	}
	if f, err := gozfs.Filesystems(pool); err != nil || len(f) != 3 {
		t.Errorf("Filesystems = %v, %v", f, err)
	}
	root, err := gozfs.GetDataset(pool)
	if err != nil {
		t.Fatal(err)
	}
	if kids, err := root.Children(1); err != nil || len(kids) != 2 {
		t.Errorf("Children(1) = %v, %v", kids, err)
	}
	if _, err := gozfs.GetDataset(pool + "/nope"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("GetDataset(missing) = %v, want 'does not exist'", err)
	}

	var stream bytes.Buffer
	if err := snap.SendSnapshot(&stream); err != nil {
		t.Fatal(err)
	}
	recv, err := gozfs.ReceiveSnapshot(&stream, pool+"/recv@r")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "recv", "f")); err != nil || string(b) != "hello" {
		t.Errorf("received f = %q, %v (%+v)", b, err, recv)
	}
	if err := os.WriteFile(filepath.Join(fs.Mountpoint, "f"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := snap.Rollback(false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(fs.Mountpoint, "f")); string(b) != "hello" {
		t.Errorf("after Rollback f = %q", b)
	}

	for _, name := range []string{pool + "/recv", pool + "/clone", pool + "/fs"} {
		d := &gozfs.Dataset{Name: name}
		var err error
		for i := 0; i < 50; i++ { // zfs-fuse: "dataset is busy" right after create/clone
			if err = d.Destroy(gozfs.DestroyRecursive); err == nil || !strings.Contains(err.Error(), "busy") {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestCompatPassthrough checks the translation layer's plain and error paths with the
// zfs command itself.
func TestCompatPassthrough(t *testing.T) {
	pool, _ := zfstest.Pool(t)
	for _, tc := range []struct {
		name    string
		args    []string
		wantOut string
		wantErr string
	}{
		{"list human", []string{"zfs", "list", "-H", "-o", "name", pool}, pool + "\n", ""},
		{"list -p", []string{"zfs", "list", "-Hp", "-o", "name,type,written", pool}, pool + "\tfilesystem\t-\n", ""},
		{"list -p missing", []string{"zfs", "list", "-Hp", "-o", "name", pool + "/nope"}, "", "dataset does not exist"},
		{"get unknown missing", []string{"zfs", "get", "-Hp", "written", pool + "/nope"}, "", "dataset does not exist"},
		{"get known", []string{"zfs", "get", "-H", "-o", "value", "type", pool}, "filesystem\n", ""},
		{"zpool get -Hp", []string{"zpool", "get", "-Hp", "health,leaked", pool}, pool + "\thealth\tONLINE\t-\n" + pool + "\tleaked\t-\t-\n", ""},
		{"zpool get missing", []string{"zpool", "get", "-Hp", "health", "nopool-lxcri"}, "", "no such pool"},
		{"other command", []string{"zfs", "snapshot", pool + "@x@y"}, "", "multiple '@' delimiters"},
		{"unknown list flag", []string{"zfs", "list", "-H", "-o", "name", "-x", pool}, "", "invalid option 'x'"},
		{"zpool list human", []string{"zpool", "list", "-H", "-o", "name,health", pool}, pool + "\tONLINE\n", ""},
		{"receive -x with -d", []string{"zfs", "receive", "-d", "-x", "mountpoint", pool}, "", "not translated"},
		{"receive -x missing argument", []string{"zfs", "receive", "-x"}, "", "missing argument for -x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			tmp := t.TempDir()
			cmd := exec.Command(tc.args[0], tc.args[1:]...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			err := cmd.Run()
			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Errorf("%v left %d temporary files", tc.args, len(left))
			}
			if tc.wantErr == "" && err != nil {
				t.Fatalf("%v: %v: %s", tc.args, err, stderr.String())
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(stderr.String(), tc.wantErr)) {
				t.Errorf("%v: %v, stderr %q; want failure saying %q", tc.args, err, stderr.String(), tc.wantErr)
			}
			if stdout.String() != tc.wantOut {
				t.Errorf("%v: stdout %q, want %q", tc.args, stdout.String(), tc.wantOut)
			}
		})
	}
}

// TestCompatReceive checks the translation of `zfs receive -x/-o`, which zfs-fuse lacks:
// the stream's mountpoint is dropped before anything mounts the dataset, -o sets, a
// failing step leaves no dataset.
func TestCompatReceive(t *testing.T) {
	pool, _ := zfstest.Pool(t)
	mnt := zfstest.Mountpoint(t, pool)
	carried := filepath.Join(t.TempDir(), "carried")
	zfs := func(stdin []byte, args ...string) ([]byte, error) {
		cmd := exec.Command("zfs", args...)
		cmd.Stdin = bytes.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			err = fmt.Errorf("zfs %v: %w: %s", args, err, stderr.String())
		}
		return out, err
	}
	must := func(stdin []byte, args ...string) string {
		t.Helper()
		out, err := zfs(stdin, args...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	// zfs-fuse says "dataset is busy" for a moment after a create or receive
	destroy := func(ds string) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			_, err := zfs(nil, "destroy", "-r", ds)
			if err == nil {
				return
			}
			if !strings.Contains(err.Error(), "busy") || time.Now().After(deadline) {
				t.Fatal(err)
			}
		}
	}
	must(nil, "create", "-o", "mountpoint="+carried, pool+"/src")
	must(nil, "snapshot", pool+"/src@s")
	stream, err := zfs(nil, "send", "-p", pool+"/src@s")
	if err != nil {
		t.Fatal(err)
	}
	destroy(pool + "/src")

	must(stream, "receive", "-u", "-x", "mountpoint", "-o", "canmount=noauto", pool+"/a@r")
	if got := must(nil, "get", "-H", "-o", "value", "mounted,mountpoint,canmount", pool+"/a"); got != "no\n"+mnt+"/a\nnoauto" {
		t.Errorf("after receive -u -x mountpoint -o canmount=noauto: %q", got)
	}
	must(stream, "receive", "-x", "mountpoint", pool+"/b@r")
	if got := must(nil, "get", "-H", "-o", "value", "mounted,mountpoint", pool+"/b"); got != "yes\n"+mnt+"/b" {
		t.Errorf("after receive -x mountpoint: %q", got)
	}
	if m := zfstest.Mounts(carried); len(m) > 0 {
		t.Errorf("mounted where the stream said: %v", m)
	}
	if _, err := zfs(stream, "receive", "-u", "-o", "nosuchprop=1", pool+"/c@r"); err == nil {
		t.Error("receive -o nosuchprop=1 succeeded")
	}
	if _, err := zfs(nil, "list", pool+"/c"); err == nil {
		t.Error("the failed receive left its dataset")
	}
	for _, ds := range []string{"a", "b"} {
		destroy(pool + "/" + ds)
	}
}
