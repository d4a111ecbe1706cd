package cgroups

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/errdefs"
)

// wrapErr names the cgroup and the operation and adds the errdefs sentinel that fits err,
// so the shim can turn it into the right gRPC code.
func wrapErr(path, op string, err error) error {
	if err == nil {
		return nil
	}
	if kind := classify(err); kind != nil && !errors.Is(err, kind) {
		return fmt.Errorf("cgroup %s: %s: %w: %w", path, op, kind, err)
	}
	return fmt.Errorf("cgroup %s: %s: %w", path, op, err)
}

// classify maps errors of the kernel and of containerd/cgroups to errdefs sentinels.
func classify(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, cgroup1.ErrCgroupDeleted),
		errors.Is(err, syscall.ENODEV), errors.Is(err, syscall.ESRCH):
		return errdefs.ErrNotFound
	case errors.Is(err, cgroup1.ErrFreezerNotSupported), errors.Is(err, cgroup1.ErrMemoryNotSupported),
		errors.Is(err, cgroup1.ErrControllerNotActive), errors.Is(err, cgroup1.ErrMountPointNotExist),
		errors.Is(err, cgroup1.ErrNoCgroupMountDestination):
		return errdefs.ErrNotImplemented
	case errors.Is(err, cgroup2.ErrInvalidGroupPath), errors.Is(err, cgroup1.ErrInvalidPid),
		errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ERANGE):
		return errdefs.ErrInvalidArgument
	case errors.Is(err, syscall.EBUSY):
		return errdefs.ErrFailedPrecondition
	case errors.Is(err, os.ErrPermission):
		return errdefs.ErrPermissionDenied
	}
	return nil
}

// errGone is returned when a cgroup disappeared while it was read; the library's readers
// ignore missing files, so a read of a removed cgroup would otherwise look like zeros.
var errGone = errors.New("cgroup was removed")

func goneErr(path, op string) error {
	return fmt.Errorf("cgroup %s: %s: %w: %w", path, op, errdefs.ErrNotFound, errGone)
}
