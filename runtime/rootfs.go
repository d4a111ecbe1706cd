package runtime

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
)

// MountRootfs mounts the root filesystem containerd prepared (usually one overlay mount)
// at <bundle>/rootfs and returns that path. With no mounts, the bundle's rootfs directory
// is used as it is (the client prepared it).
func MountRootfs(bundle string, mounts []*types.Mount) (string, error) {
	rootfs := filepath.Join(bundle, "rootfs")
	if len(mounts) == 0 {
		if _, err := os.Stat(rootfs); err != nil {
			return "", fmt.Errorf("bundle %s has no rootfs and no mounts were given: %w", bundle, errdefs.ErrInvalidArgument)
		}
		return rootfs, nil
	}
	if err := os.MkdirAll(rootfs, 0o711); err != nil {
		return "", err
	}
	ms := make([]mount.Mount, 0, len(mounts))
	for _, m := range mounts {
		ms = append(ms, mount.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
	}
	if err := mount.All(ms, rootfs); err != nil {
		UnmountRootfs(bundle)
		return "", fmt.Errorf("mount rootfs at %s: %w", rootfs, err)
	}
	return rootfs, nil
}

// UnmountRootfs undoes MountRootfs; it is safe when nothing is mounted.
func UnmountRootfs(bundle string) error {
	rootfs := filepath.Join(bundle, "rootfs")
	if err := mount.UnmountRecursive(rootfs, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", rootfs, err)
	}
	return nil
}
