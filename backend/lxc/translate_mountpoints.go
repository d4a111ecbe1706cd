package lxc

import (
	"path"
	"strings"
)

// mountKind is what a mount leaves at its target, as far as the mount points of later
// mounts below it are concerned.
type mountKind int

const (
	// otherMount: a filesystem with content of its own (proc, sysfs, cgroup, a block
	// device...): mount points in it must exist, nothing is created there.
	otherMount mountKind = iota
	// freshMount: a filesystem the kernel makes empty at mount time (tmpfs, devpts, ...).
	freshMount
	// bindMount: a host directory; mount points in it are made in it, on the host.
	bindMount
	// kernelMount: mounted by liblxc itself (lxc.mount.auto): treated as otherMount.
	kernelMount = otherMount
)

// freshFilesystems are the filesystem types that are empty when mounted.
var freshFilesystems = map[string]bool{
	"tmpfs": true, "ramfs": true, "devpts": true, "mqueue": true,
}

// mounted is a mount earlier in the configuration than the one being translated.
type mounted struct {
	target string // relative to the rootfs, clean
	kind   mountKind
	source string // host path of a bind mount
}

// isBelow tells whether target is strictly inside dir (both relative and clean).
func isBelow(target, dir string) bool {
	return strings.HasPrefix(target, dir+"/")
}

// mountPoint decides where the mount point of a mount at target (relative to the rootfs)
// is made, and returns the mount options that make liblxc make it, if any. liblxc's own
// create=dir|file makes the mount point on the host path rootfs+target and follows the
// image's symlinks on the way (to anywhere on the host); so wherever the path may come
// from the image or from a host directory, the mount point is a MountPoint, made by
// createMountPoints inside its base before the container starts, and liblxc creates
// nothing.
func (t *translator) mountPoint(field string, done []mounted, target string, dir bool) []string {
	var parent *mounted
	for i := len(done) - 1; i >= 0; i-- {
		if isBelow(target, done[i].target) {
			parent = &done[i]
			break
		}
	}
	switch {
	case parent == nil:
		t.r.MountPoints = append(t.r.MountPoints, MountPoint{Base: t.o.Rootfs, Rel: target, Dir: dir, Field: field})
	case parent.kind == bindMount:
		// Inside a volume, the mount point is made in the volume (as runc does), resolved
		// inside it: a symlink in the volume cannot lead out of it.
		t.r.MountPoints = append(t.r.MountPoints, MountPoint{
			Base: parent.source, Rel: strings.TrimPrefix(target, parent.target+"/"), Dir: dir, Field: field,
		})
	case parent.kind == freshMount:
		// The parent filesystem does not exist before liblxc mounts it, empty, moments
		// before this mount: nothing in it comes from the image or the host, so nothing
		// there can be a symlink, and liblxc's safe_mount refuses a symlinked target
		// anyway. Only here does liblxc make the mount point.
		if dir {
			return []string{"create=dir"}
		}
		return []string{"create=file"}
	}
	// Under proc, sysfs and other filesystems with content of their own, the mount point
	// must exist: nothing is created.
	return nil
}

// cleanRel is path.Clean for a relative path that stays relative ("" for the base).
func cleanRel(p string) string {
	c := path.Clean("/" + p)
	return strings.TrimPrefix(c, "/")
}
