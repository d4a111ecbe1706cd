//go:build linux

package zfsroot

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// zfsLog puts a zfs first on PATH that records the subcommand of every call into a file
// and runs the zfs that was first before; it returns a function giving the subcommands
// recorded since the last call of it.
func zfsLog(t *testing.T) func() []string {
	t.Helper()
	next, err := exec.LookPath("zfs")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$1\" >> " + log + "\nexec " + next + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "zfs"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return func() []string {
		b, _ := os.ReadFile(log)
		os.Remove(log)
		return strings.Fields(string(b))
	}
}

// TestHotPathCommands: a checkpoint is the snapshot and its hand-over to the checkpoint's
// dataset (clone, promote) with the listing of the container's older snapshots, and a
// restore in the checkpoint's namespace is one clone, which ZFS mounts, and one look at
// where: every zfs command on these paths costs a restore's time (a process, and on
// zfs-fuse a round trip to its daemon), so none is there that need not be.
func TestHotPathCommands(t *testing.T) {
	f := newFixture(t)
	src := f.container("nsa", "src", "v1\n")
	calls := zfsLog(t)

	dir, _ := f.checkpoint(src, false)
	got := calls()
	slices.Sort(got)
	if want := []string{"clone", "list", "promote", "snapshot"}; !slices.Equal(got, want) {
		t.Errorf("a checkpoint ran zfs %v, want %v", got, want)
	}

	r, err := f.restore("nsa", "dst", dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := calls(), []string{"clone", "get"}; !slices.Equal(got, want) {
		t.Errorf("a restore ran zfs %v, want %v", got, want)
	}
	if got := readState(t, r); got != "v1\n" {
		t.Errorf("the restore shows %q, want the checkpoint's v1", got)
	}
	if err := r.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
}
