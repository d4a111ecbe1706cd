package shim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/runtime"
)

// TestRemoteBackendRootfs: a backend that does not need the rootfs on this host gets
// containerd's mounts as they are, and the shim mounts nothing.
func TestRemoteBackendRootfs(t *testing.T) {
	e := newFakeEnv(t, nil)
	e.b.SetNeeds(runtime.Needs{})
	src := t.TempDir()
	mounts := []*types.Mount{{Type: "bind", Source: src, Options: []string{"rbind", "ro"}}}
	if _, err := e.s.Create(e.ctx, &taskAPI.CreateTaskRequest{ID: "c", Bundle: e.bundle, Rootfs: mounts}); err != nil {
		t.Fatal(err)
	}
	req := e.b.Container("c").Request()
	if req.Rootfs != "" || len(req.Mounts) != 1 || req.Mounts[0].Source != src {
		t.Errorf("rootfs %q, mounts %v: want no rootfs and containerd's mounts", req.Rootfs, req.Mounts)
	}
	// Had the shim bind-mounted src, the marker would show through.
	os.WriteFile(filepath.Join(src, "marker"), nil, 0o644)
	if _, err := os.Stat(filepath.Join(e.bundle, "rootfs", "marker")); err == nil {
		t.Error("the shim mounted the rootfs for a backend that does not need it")
	}
}

// TestCheckpointOwnership: a backend that owns its checkpoints is asked to checkpoint and
// restores from the path containerd gives; one that keeps no rootfs here and no
// checkpoints refuses a restore; a local backend without ZFS says what to configure.
func TestCheckpointOwnership(t *testing.T) {
	for _, tc := range []struct {
		name  string
		needs runtime.Needs
		err   func(error) bool
		msg   string
	}{
		{"owns checkpoints", runtime.Needs{OwnsCheckpoints: true}, nil, ""},
		{"remote without checkpoints", runtime.Needs{}, errdefs.IsFailedPrecondition, "keeps neither"},
		{"local without zfs", runtime.Needs{HostRootfs: true, HostPids: true}, errdefs.IsFailedPrecondition, "configure [zfs] dataset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t, nil)
			e.b.SetNeeds(tc.needs)
			_, err := e.s.Create(e.ctx, &taskAPI.CreateTaskRequest{ID: "c", Bundle: e.bundle, Checkpoint: "/var/lib/ckpt/1"})
			err = native(err)
			if tc.err != nil {
				if err == nil || !tc.err(err) || !contains(err.Error(), tc.msg) {
					t.Fatalf("got %v, want an error saying %q", err, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := e.b.Container("c").Request().Checkpoint; got != "/var/lib/ckpt/1" {
				t.Errorf("restore from %q", got)
			}
			must(t, e.start("c", ""), e.checkpoint("c"))
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
