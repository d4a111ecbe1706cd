package shim

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/containerd/api/types"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/proto"

	"github.com/lxcri/lxcri/integration/harness"
)

// TestRuntimeInfo: `containerd-shim-lxcri-v2 -info`, as containerd runs it for each runtime
// handler (options on stdin), reports the features of the backend the options choose: for
// lxc no recursive read-only mounts (so CRI makes plain read-only ones), for crun with
// runc what `runc features` says.
func TestRuntimeInfo(t *testing.T) {
	shimBin := filepath.Join(harness.ShimDir(), harness.ShimBinary)
	host := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(host, []byte("state_dir = \""+t.TempDir()+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	info := func(t *testing.T, body string) (*types.RuntimeInfo, *features.Features) {
		t.Helper()
		var stdin []byte
		if body != "" {
			a, err := typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigBody: []byte(body)})
			if err != nil {
				t.Fatal(err)
			}
			if stdin, err = proto.Marshal(a); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(shimBin, "-info")
		cmd.Stdin = bytes.NewReader(stdin)
		cmd.Env = append(os.Environ(), "LXCRI_CONFIG="+host)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s -info: %v", shimBin, err)
		}
		var ri types.RuntimeInfo
		if err := proto.Unmarshal(out, &ri); err != nil {
			t.Fatal(err)
		}
		if ri.Features == nil {
			t.Fatalf("no features in %v", &ri)
		}
		v, err := typeurl.UnmarshalAny(ri.Features)
		if err != nil {
			t.Fatal(err)
		}
		f, ok := v.(*features.Features)
		if !ok {
			t.Fatalf("features of type %T", v)
		}
		return &ri, f
	}
	t.Run("lxc", func(t *testing.T) {
		ri, f := info(t, "")
		if ri.Name != "io.containerd.lxcri.v2" || ri.Annotations["io.lxcri.backend"] != "lxc" {
			t.Errorf("info %v", ri)
		}
		if slices.Contains(f.MountOptions, "rro") || !slices.Contains(f.MountOptions, "ro") {
			t.Errorf("lxc mount options %v: want ro and no rro", f.MountOptions)
		}
		if e := f.Linux.MountExtensions.IDMap.Enabled; e == nil || *e {
			t.Error("lxc reports idmapped mounts")
		}
	})
	t.Run("crun-runc", func(t *testing.T) {
		ri, f := info(t, "backend = \"crun\"\n[crun]\nbinary = \"runc\"\n")
		if ri.Annotations["io.lxcri.backend"] != "crun" {
			t.Errorf("info %v", ri)
		}
		out, err := exec.Command("runc", "features").Output()
		if err != nil {
			t.Fatalf("runc features: %v", err)
		}
		var want features.Features
		if err := json.Unmarshal(out, &want); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(f.MountOptions, want.MountOptions) {
			t.Errorf("mount options %v, want runc's %v", f.MountOptions, want.MountOptions)
		}
	})
}
