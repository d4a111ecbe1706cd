package proxmoxlxc

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestWritePodFiles: the pod's files land in the CT's root with their content, mode and
// owner, and no symlink in the root leads a write out of it.
func TestWritePodFiles(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	src := filepath.Join(base, "src")
	for _, d := range []string{root, outside, src} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The CT's root belongs to its mapped root where the test may chown.
	rootUID := os.Getuid()
	if os.Geteuid() == 0 {
		rootUID = 100000
		if err := os.Chown(root, rootUID, rootUID); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "hosts"), []byte("untouched\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// etc escapes the root by a relative and hosts by an absolute symlink: both resolve
	// inside the root instead.
	if err := os.Symlink("../../outside", filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "outside"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "hosts"), filepath.Join(root, "outside", "hosts")); err != nil {
		t.Fatal(err)
	}
	files := []PodFile{
		{Field: "mounts[0]", Dest: "/etc/hosts", Source: filepath.Join(src, "hosts"), ReadOnly: false},
		{Field: "mounts[1]", Dest: "/etc/resolv.conf", Source: filepath.Join(src, "resolv.conf"), ReadOnly: true},
	}
	os.WriteFile(files[0].Source, []byte("127.0.0.1 localhost\n"), 0o600)
	os.WriteFile(files[1].Source, []byte("nameserver 192.0.2.53\n"), 0o600)

	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := writePodFilesIn(fd, files); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "hosts")); string(b) != "untouched\n" {
		t.Errorf("a file out of the root was written: %q", b)
	}
	for _, tc := range []struct {
		path, content string
		uid           int
	}{
		{filepath.Join(root, "outside", "hosts"), "127.0.0.1 localhost\n", rootUID},
		{filepath.Join(root, "outside", "resolv.conf"), "nameserver 192.0.2.53\n", os.Geteuid()},
	} {
		fi, err := os.Lstat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(tc.path)
		st := fi.Sys().(*syscall.Stat_t)
		if string(b) != tc.content || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 || int(st.Uid) != tc.uid {
			t.Errorf("%s: %q mode %v uid %d, want %q, a regular file 0644 of uid %d", tc.path, b, fi.Mode(), st.Uid, tc.content, tc.uid)
		}
	}

	// A source that is not a regular file, or is a symlink, is refused.
	os.Symlink(files[0].Source, filepath.Join(src, "link"))
	for _, bad := range []string{src, filepath.Join(src, "link"), filepath.Join(src, "missing")} {
		if err := writePodFilesIn(fd, []PodFile{{Field: "mounts[0]", Dest: "/etc/hosts", Source: bad}}); err == nil {
			t.Errorf("source %s: no error", bad)
		}
	}
}
