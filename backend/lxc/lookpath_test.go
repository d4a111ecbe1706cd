package lxc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

func TestLookProgram(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"bin", "usr/bin", "app", "noexec"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(root, p), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("bin/sh", 0o755)
	write("usr/bin/tool", 0o755)
	write("app/run", 0o700)
	write("noexec/data", 0o644)
	// An absolute symlink is resolved inside the root, never on the host.
	if err := os.Symlink("/usr/bin/tool", filepath.Join(root, "bin/link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "bin/hostlink")); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	path := []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	for _, tc := range []struct {
		name, prog, cwd string
		env             []string
		want            string // "" for found, else a part of the error
	}{
		{"in PATH", "sh", "/", path, ""},
		{"later PATH entry", "tool", "/", path, ""},
		{"absolute", "/app/run", "/", path, ""},
		{"relative to cwd", "./run", "/app", path, ""},
		{"relative with a slash", "app/run", "/", path, ""},
		{"symlink inside the root", "link", "/", path, ""},
		{"missing", "no-such-binary", "/", path, `exec: "no-such-binary": executable file not found in $PATH`},
		{"not in the given PATH", "tool", "/", []string{"PATH=/bin"}, "executable file not found"},
		{"default PATH without one", "tool", "/", nil, ""},
		{"first PATH wins, as getenv", "tool", "/", []string{"PATH=/bin", "PATH=/usr/bin"}, "executable file not found"},
		{"empty PATH entry is cwd", "run", "/app", []string{"PATH=/bin:"}, ""},
		{"missing absolute", "/nothing", "/", path, `exec: "/nothing": stat /nothing: no such file or directory`},
		{"not executable", "/noexec/data", "/", path, "permission denied"},
		{"not executable in PATH", "data", "/", []string{"PATH=/noexec"}, "permission denied"},
		{"a directory", "/app", "/", path, "permission denied"},
		{"symlink to a host file is looked up inside", "/bin/hostlink", "/", path, "no such file or directory"},
		{"dot-dot cannot leave the root", "../../../../bin/sh", "/app", path, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := lookProgram(fd, tc.prog, tc.cwd, tc.env)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("lookProgram(%q): %v", tc.prog, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("lookProgram(%q) = %v, want an error with %q", tc.prog, err, tc.want)
			}
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "process.args[0]") {
				t.Errorf("error %v is not an InvalidArgument naming process.args[0]", err)
			}
		})
	}
}
