package runtime

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// CheckpointNeedsZFS is the error of a Checkpoint on a local backend (lxc, crun) whose
// container's root filesystem is not on ZFS: a checkpoint is a snapshot of that dataset,
// so the operator has to configure one. It says what to set and where, since the shim
// reads its configuration from several places.
func CheckpointNeedsZFS(backend string) error {
	return fmt.Errorf("checkpoint on the %s backend needs the container's root filesystem on ZFS: "+
		"set [zfs] dataset (a parent dataset whose pool exists, e.g. dataset = \"tank/lxcri\") in %s, "+
		"or in the file %s names in containerd's environment, or in the runtime options (config_path or config_body); "+
		"it applies to containers created afterwards: %w",
		backend, DefaultConfigPath, ConfigPathEnv, errdefs.ErrFailedPrecondition)
}
