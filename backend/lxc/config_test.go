package lxc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/backend/lxcstart"
	"github.com/lxcri/lxcri/runtime"
)

func runtimeLXC(helper string) runtime.LXCConfig { return runtime.LXCConfig{Helper: helper} }

func TestFindHelper(t *testing.T) {
	root := t.TempDir()
	dir := func(name string) string {
		d := filepath.Join(root, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	install := func(d string, mode os.FileMode) string {
		p := filepath.Join(d, lxcstart.Name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	real, link, copied, onPath, prefix := dir("real"), dir("link"), dir("copied"), dir("onpath"), dir("prefix")
	shim := filepath.Join(real, "containerd-shim-lxcri-v2")
	install(real, 0o755)
	if err := os.WriteFile(shim, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(link, "containerd-shim-lxcri-v2")
	if err := os.Symlink(shim, linked); err != nil {
		t.Fatal(err)
	}
	copiedShim := filepath.Join(copied, "containerd-shim-lxcri-v2")
	if err := os.WriteFile(copiedShim, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	pathHelper := install(onPath, 0o755)
	defer func(old string) { InstallBinDir = old }(InstallBinDir)
	InstallBinDir = prefix
	prefixHelper := install(prefix, 0o755)
	noexec := dir("noexec")
	install(noexec, 0o644)

	for _, tc := range []struct {
		name, exe, argv0, path, want string
	}{
		{"beside the shim", shim, shim, "", filepath.Join(real, lxcstart.Name)},
		{"beside the real path of a symlinked shim", linked, linked, "", filepath.Join(real, lxcstart.Name)},
		{"copied shim: PATH", copiedShim, copiedShim, noexec + ":" + onPath, pathHelper},
		{"copied shim, nothing on PATH: install prefix", copiedShim, "containerd-shim-lxcri-v2", "/nonexistent", prefixHelper},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := findHelper(helperCandidates(tc.exe, tc.argv0, tc.path))
			if err != nil || got != tc.want {
				t.Errorf("findHelper = %q, %v; want %q", got, err, tc.want)
			}
		})
	}

	// Nowhere: the error names every place looked in, in order.
	InstallBinDir = filepath.Join(root, "empty-prefix")
	_, err := findHelper(helperCandidates(copiedShim, copiedShim, noexec))
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("findHelper with no helper: %v, want FailedPrecondition", err)
	}
	msg := err.Error()
	last := -1
	for _, w := range []string{filepath.Join(copied, lxcstart.Name), filepath.Join(noexec, lxcstart.Name), filepath.Join(InstallBinDir, lxcstart.Name), "[lxc] helper"} {
		i := strings.Index(msg, w)
		if i < 0 || i < last {
			t.Errorf("error %q does not name %s (in order)", msg, w)
		}
		last = i
	}
}

func TestResolveSettingsConfiguredHelper(t *testing.T) {
	dir := t.TempDir()
	h := filepath.Join(dir, lxcstart.Name)
	if err := os.WriteFile(h, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := resolveSettings(runtimeLXC(h))
	if err != nil || s.helper != h {
		t.Fatalf("configured helper: %+v, %v", s, err)
	}
	if _, err := resolveSettings(runtimeLXC(filepath.Join(dir, "missing"))); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("missing configured helper: %v, want FailedPrecondition", err)
	}
	if _, err := resolveSettings(runtimeLXC("relative/lxcri-start")); !errdefs.IsInvalidArgument(err) {
		t.Errorf("relative configured helper: %v, want InvalidArgument", err)
	}
}
