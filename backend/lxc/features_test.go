package lxc

import (
	"context"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/backend/lxcstart"
)

// TestFeatures: what the backend reports is what the translator takes: mount options it
// maps (none it refuses, so no "rro" for CRI), every namespace, the seccomp actions it
// maps, no idmapped mounts.
func TestFeatures(t *testing.T) {
	f, err := (&backend{}).Features(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range f.MountOptions {
		if _, refused := unsupportedMountOptions[o]; refused || !lxcMountFlags[o] {
			t.Errorf("mount option %q reported but not mapped", o)
		}
	}
	for _, o := range []string{"ro", "rbind", "nosuid", "rprivate"} {
		if !slices.Contains(f.MountOptions, o) {
			t.Errorf("mount option %q missing", o)
		}
	}
	if slices.Contains(f.MountOptions, "rro") {
		t.Error("rro reported: liblxc cannot make recursive read-only mounts")
	}
	if len(f.Linux.Namespaces) != len(nsNames) {
		t.Errorf("namespaces %v, want all of %v", f.Linux.Namespaces, nsNames)
	}
	if e := f.Linux.MountExtensions.IDMap.Enabled; e == nil || *e {
		t.Error("idmap reported enabled")
	}
	for _, a := range f.Linux.Seccomp.Actions {
		if _, err := seccompAction("x", specs.LinuxSeccompAction(a), nil); err != nil {
			t.Errorf("seccomp action %s reported but refused: %v", a, err)
		}
	}
	if len(f.Linux.Capabilities) != len(lxcstart.CapNames) || f.OCIVersionMax != specs.Version {
		t.Errorf("capabilities %d, version %s", len(f.Linux.Capabilities), f.OCIVersionMax)
	}
}
