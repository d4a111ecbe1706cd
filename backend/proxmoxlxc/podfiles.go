package proxmoxlxc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// maxPodFile bounds a pod file's size: /etc/hosts with many host aliases is a few KiB.
const maxPodFile = 1 << 20

// writePodFiles writes the pod's files into the root of the running CT whose init is pid,
// before the task's process starts. Every path is resolved inside the CT's root
// (RESOLVE_IN_ROOT: a symlink in the CT, whoever made it, resolves as if chrooted, never
// out of it), and the file replaces what is at its destination by a rename in its
// directory, so no symlink at the destination is followed. A read-only file is left owned
// by this host's root, which the CT's user namespace does not map: the CT's root can read
// it but not write it. A writable one belongs to the CT's root.
func writePodFiles(pid int, files []PodFile) error {
	if len(files) == 0 {
		return nil
	}
	root, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the CT's root: %w", err)
	}
	defer unix.Close(root)
	return writePodFilesIn(root, files)
}

// writePodFilesIn writes files into the directory root (an fd) as writePodFiles does.
func writePodFilesIn(root int, files []PodFile) error {
	var st unix.Stat_t
	if err := unix.Fstat(root, &st); err != nil {
		return fmt.Errorf("the CT's root: %w", err)
	}
	for _, f := range files {
		if err := writePodFile(root, int(st.Uid), int(st.Gid), f); err != nil {
			return fmt.Errorf("%s: %s from %s: %w", f.Field, f.Dest, f.Source, err)
		}
	}
	return nil
}

func writePodFile(root, uid, gid int, f PodFile) error {
	data, err := readPodFile(f.Source)
	if err != nil {
		return err
	}
	rel := strings.TrimPrefix(path.Clean(f.Dest), "/")
	dirName, base := path.Split(rel)
	if base == "" || dirName == "" {
		return fmt.Errorf("not a file in a directory: %w", errdefs.ErrInvalidArgument)
	}
	dir, err := openInRoot(root, strings.TrimSuffix(dirName, "/"))
	if errors.Is(err, unix.ENOENT) {
		// An image without /etc: made as the CT's root's, like the rest of its root.
		if err = unix.Mkdirat(root, strings.TrimSuffix(dirName, "/"), 0o755); err == nil || errors.Is(err, unix.EEXIST) {
			dir, err = openInRoot(root, strings.TrimSuffix(dirName, "/"))
			if err == nil {
				err = unix.Fchownat(dir, "", uid, gid, unix.AT_EMPTY_PATH)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("its directory in the CT: %w", err)
	}
	defer unix.Close(dir)
	tmp := ".lxcri-" + base
	unix.Unlinkat(dir, tmp, 0)
	fd, err := unix.Openat(dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	file := os.NewFile(uintptr(fd), tmp)
	_, err = file.Write(data)
	if err == nil && !f.ReadOnly {
		err = file.Chown(uid, gid)
	}
	if err == nil {
		// not the umask's
		err = file.Chmod(0o644)
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dir, tmp, dir, base)
	}
	if err != nil {
		unix.Unlinkat(dir, tmp, 0)
	}
	return err
}

// openInRoot opens directory name (relative) of the CT's root, resolving it inside root.
func openInRoot(root int, name string) (int, error) {
	for {
		fd, err := unix.Openat2(root, name, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		return fd, err
	}
}

// readPodFile reads one of CRI's files of the pod: a regular file, not through a
// symlink, bounded in size.
func readPodFile(name string) ([]byte, error) {
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s): %w", fi.Mode().Type(), errdefs.ErrInvalidArgument)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPodFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxPodFile {
		return nil, fmt.Errorf("larger than %d bytes: %w", maxPodFile, errdefs.ErrInvalidArgument)
	}
	return data, nil
}
