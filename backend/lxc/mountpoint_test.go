package lxc

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// emptyDir fails unless dir holds nothing.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s was created outside the base", filepath.Join(dir, e.Name()))
	}
}

// TestCreateMountPoints: mount points are made inside their base, whatever symlinks lie
// on the way.
func TestCreateMountPoints(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(t *testing.T, root, outside string)
		point   MountPoint // Base is set to root
		made    string     // made inside root ("" when refused)
		refused bool
	}{
		{
			name:  "missing directories",
			point: MountPoint{Rel: "a/b/c", Dir: true},
			made:  "a/b/c",
		},
		{
			name:  "file",
			point: MountPoint{Rel: "etc/x.conf"},
			made:  "etc/x.conf",
		},
		{
			name: "absolute symlink to a host directory missing in the root",
			setup: func(t *testing.T, root, outside string) {
				os.Symlink(outside, filepath.Join(root, "lnk"))
			},
			point:   MountPoint{Rel: "lnk/nologin"},
			refused: true,
		},
		{
			name: "absolute symlink resolved inside the root",
			setup: func(t *testing.T, root, outside string) {
				os.MkdirAll(filepath.Join(root, outside), 0o755)
				os.Symlink(outside, filepath.Join(root, "lnk"))
			},
			point:   MountPoint{Rel: "lnk/nologin"},
			refused: true, // made inside the root, then refused: liblxc mounts on no symlinked path
		},
		{
			name: "relative symlink climbing out",
			setup: func(t *testing.T, root, outside string) {
				os.MkdirAll(filepath.Join(root, outside), 0o755)
				os.Symlink("../../../../../../../../.."+outside, filepath.Join(root, "up"))
			},
			point:   MountPoint{Rel: "up/d", Dir: true},
			refused: true, // made inside the root, then refused: liblxc mounts on no symlinked path
		},
		{
			name: "symlink as the last component",
			setup: func(t *testing.T, root, outside string) {
				os.MkdirAll(filepath.Join(root, outside), 0o755)
				os.Symlink(filepath.Join(outside, "f"), filepath.Join(root, "f"))
			},
			point:   MountPoint{Rel: "f"},
			refused: true, // dangling: its target is not made
		},
		{
			name: "magic link",
			setup: func(t *testing.T, root, outside string) {
				os.Symlink("/proc/self/root"+outside, filepath.Join(root, "magic"))
			},
			point:   MountPoint{Rel: "magic/x", Dir: true},
			refused: true,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root, outside := t.TempDir(), t.TempDir()
			if c.setup != nil {
				c.setup(t, root, outside)
			}
			p := c.point
			p.Base, p.Field = root, "mounts[0]"
			err := createMountPoints([]MountPoint{p})
			emptyDir(t, outside)
			if c.refused {
				if err == nil {
					t.Fatal("no error")
				}
				if !errors.Is(err, errdefs.ErrInvalidArgument) && !errors.Is(err, errdefs.ErrFailedPrecondition) {
					t.Errorf("error %v is neither InvalidArgument nor FailedPrecondition", err)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			made := filepath.Join(root, c.made)
			if rest, ok := strings.CutPrefix(c.made, "OUTSIDE"); ok {
				made = filepath.Join(root, outside, rest)
			}
			fi, err := os.Lstat(made)
			if err != nil {
				t.Fatalf("not made inside the root: %v", err)
			}
			if fi.IsDir() != p.Dir {
				t.Errorf("%s: directory %v, want %v", made, fi.IsDir(), p.Dir)
			}
			if err := createMountPoints([]MountPoint{p}); err != nil {
				t.Errorf("second time: %v", err)
			}
		})
	}
}

// TestTranslateMountPoints: a spec mount through an image symlink, and one inside a
// volume, are made inside the rootfs and the volume; under a fresh tmpfs liblxc makes it.
func TestTranslateMountPoints(t *testing.T) {
	root, outside, volume, bundle := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	os.Symlink(outside, filepath.Join(root, "lnk"))
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.Symlink("/etc", filepath.Join(root, "etc-link"))
	os.Symlink(outside, filepath.Join(volume, "lnk"))
	os.WriteFile(filepath.Join(bundle, "file"), nil, 0o644)
	s := baseSpec(t)
	s.Mounts = append(s.Mounts,
		specs.Mount{Destination: "/etc-link/nologin", Type: "bind", Source: "file", Options: []string{"rbind"}},
		specs.Mount{Destination: "/vol", Type: "bind", Source: volume, Options: []string{"rbind"}},
		specs.Mount{Destination: "/vol/lnk/sub", Type: "tmpfs", Source: "tmpfs"},
		specs.Mount{Destination: "/run/secrets/x", Type: "bind", Source: "file", Options: []string{"rbind"}},
	)
	o := testOptions("mountpoints")
	o.Rootfs, o.Bundle, o.Stat = root, bundle, hostStat(root)
	r, err := Translate(s, o)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]MountPoint{
		"etc-link/nologin": {Base: root, Rel: "etc-link/nologin"},
		"vol":              {Base: root, Rel: "vol", Dir: true},
		"vol/lnk/sub":      {Base: volume, Rel: "lnk/sub", Dir: true},
	}
	for _, mp := range r.MountPoints {
		key := mp.Rel
		if mp.Base == volume {
			key = "vol/" + mp.Rel
		}
		if w, ok := want[key]; ok {
			if mp.Base != w.Base || mp.Rel != w.Rel || mp.Dir != w.Dir {
				t.Errorf("mount point %+v, want %+v", mp, w)
			}
			delete(want, key)
		}
	}
	for k := range want {
		t.Errorf("no mount point for %s", k)
	}
	// under the spec's /run tmpfs: liblxc creates it, in the fresh tmpfs
	found := false
	for _, e := range r.Get("lxc.mount.entry") {
		if e == filepath.Join(bundle, "file")+" run/secrets/x none rbind,create=file 0 0" {
			found = true
		}
	}
	if !found {
		t.Errorf("no create=file entry for run/secrets/x in %q", r.Get("lxc.mount.entry"))
	}
	err = createMountPoints(r.MountPoints)
	emptyDir(t, outside)
	if err == nil {
		t.Fatal("a mount point through a symlink to a missing directory was not refused")
	}
	if _, err := os.Stat(filepath.Join(root, "etc/nologin")); err != nil {
		t.Errorf("etc-link/nologin not made in the rootfs's etc: %v", err)
	}
}

// TestTranslateMountEntryNoOptions: a mount without options gets "defaults", not an empty
// field that would shift the ones after it.
func TestTranslateMountEntryNoOptions(t *testing.T) {
	s := baseSpec(t)
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "tmpfs", Source: "tmpfs"})
	r, err := Translate(s, testOptions("nooptions"))
	if err != nil {
		t.Fatal(err)
	}
	entries := r.Get("lxc.mount.entry")
	for _, e := range entries {
		if e == "tmpfs x tmpfs defaults 0 0" {
			return
		}
	}
	t.Errorf("no entry %q in %q", "tmpfs x tmpfs defaults 0 0", entries)
}
