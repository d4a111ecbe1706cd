package lxc

import (
	"errors"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// MountPoint is a mount point to create before the container starts: Rel inside the host
// directory Base, resolved as if Base were the root (a symlink cannot lead out of it).
type MountPoint struct {
	// Base is the host directory to resolve in: the rootfs, or a bind mount's source.
	Base string
	// Rel is the path inside Base, relative and clean.
	Rel string
	// Dir: the mount point is a directory (else an empty file).
	Dir bool
	// Field names the mount in the spec, for errors.
	Field string
}

// resolveInRoot is openat2's resolution of a path inside a root: symlinks (also absolute
// ones and "..") stay inside it; magic links (/proc/self/...) are refused.
const inRootResolve = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// createMountPoints makes every missing component of each mount point inside its base:
// directories 0755, the last component an empty 0644 file where the mount is of a file.
// Every lookup is an openat2 with RESOLVE_IN_ROOT relative to the base, and every
// creation is relative to the directory that lookup opened and follows no symlink, so
// nothing is ever made outside the base.
func createMountPoints(points []MountPoint) error {
	for _, p := range points {
		if err := createMountPoint(p); err != nil {
			return fmt.Errorf("OCI spec %s: mount point %s in %s: %w", p.Field, p.Rel, p.Base, err)
		}
	}
	return nil
}

func createMountPoint(p MountPoint) error {
	base, err := unix.Open(p.Base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open base: %v: %w", err, errdefs.ErrFailedPrecondition)
	}
	defer unix.Close(base)
	rel := cleanRel(p.Rel)
	if rel == "" {
		return nil
	}
	parts := strings.Split(rel, "/")
	for i, name := range parts {
		last := i == len(parts)-1
		sub := strings.Join(parts[:i+1], "/")
		fd, err := openInRoot(base, sub, unix.O_PATH)
		if err == nil {
			unix.Close(fd)
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("resolve %s: %v: %w", sub, err, errdefs.ErrFailedPrecondition)
		}
		parent, err := openInRoot(base, strings.Join(parts[:i], "/"), unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return fmt.Errorf("resolve %s: %v: %w", strings.Join(parts[:i], "/"), err, errdefs.ErrFailedPrecondition)
		}
		err = makeEntry(parent, name, last && !p.Dir)
		unix.Close(parent)
		if errors.Is(err, unix.EEXIST) {
			// name is a symlink whose target does not exist: creating its target
			// would mean following it, which is left to nobody.
			return fmt.Errorf("%s is a dangling symlink: %w", sub, errdefs.ErrInvalidArgument)
		}
		if err != nil {
			return fmt.Errorf("create %s: %v: %w", sub, err, errdefs.ErrFailedPrecondition)
		}
	}
	// liblxc mounts only on a path without symlinks (its safe_mount refuses them), so a
	// mount point reached through one of the image's symlinks, even one that stays inside
	// the base, is refused here with the reason rather than failing later in liblxc.
	fd, err := unix.Openat2(base, rel, &unix.OpenHow{
		Flags:   uint64(unix.O_PATH | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	})
	if errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("the path passes through a symlink, and LXC mounts only on paths without one: %w", errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return fmt.Errorf("resolve %s: %v: %w", rel, err, errdefs.ErrFailedPrecondition)
	}
	unix.Close(fd)
	return nil
}

// openInRoot opens p ("" for root itself) inside root.
func openInRoot(root int, p string, flags int) (int, error) {
	if p == "" {
		p = "."
	}
	return unix.Openat2(root, p, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: inRootResolve,
	})
}

// makeEntry creates name in dir, a directory or an empty file, following no symlink.
func makeEntry(dir int, name string, file bool) error {
	if !file {
		return unix.Mkdirat(dir, name, 0o755)
	}
	fd, err := unix.Openat(dir, name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}
