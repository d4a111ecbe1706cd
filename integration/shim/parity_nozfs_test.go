//go:build linux

package shim_test

import (
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
)

// TestCheckpointWithoutZFS: without a [zfs] dataset, Checkpoint is refused as a failed
// precondition that says what to configure, and where.
func TestCheckpointWithoutZFS(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			ctx := env.Context()
			_, task := newTask(t, env, "nozfs", cio.NullIO, oci.WithProcessArgs("sleep", "1000"))
			if err := task.Start(ctx); err != nil {
				t.Fatal(err)
			}
			_, err := task.Checkpoint(ctx)
			if err == nil {
				t.Fatal("checkpoint without ZFS succeeded")
			}
			if !errdefs.IsFailedPrecondition(err) {
				t.Errorf("checkpoint without ZFS: %v, want FailedPrecondition", err)
			}
			for _, w := range []string{"[zfs] dataset", "/etc/lxcri/config.toml", "LXCRI_CONFIG"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("checkpoint without ZFS: %q does not say %q", err, w)
				}
			}
		})
	}
}
