package shim

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/proto"

	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/fake"
)

// TestInfoFeatures: -info reports the features of the backend the runtime options choose,
// as Create would choose it.
func TestInfoFeatures(t *testing.T) {
	t.Setenv("LXCRI_CONFIG", writeConfig(t, ""))
	lxc, crun, bare := fake.New(&fake.Log{}), fake.New(&fake.Log{}), fake.New(&fake.Log{})
	lxc.SetFeatures(&features.Features{MountOptions: []string{"ro"}})
	crun.SetFeatures(&features.Features{MountOptions: []string{"ro", "rro"}})
	of := func(b runtime.Backend) Factory {
		return func(context.Context, *runtime.Config) (runtime.Backend, error) { return b, nil }
	}
	m := NewManager(Registry{"lxc": of(lxc), "crun": of(crun), "proxmox-lxc": of(bare)})
	options := func(body string) *bytes.Reader {
		a, err := typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigBody: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		b, err := proto.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.NewReader(b)
	}
	for _, tc := range []struct {
		name        string
		in          *bytes.Reader
		backend     string
		mountOption []string // nil: no features
		err         func(error) bool
	}{
		{"no options", bytes.NewReader(nil), "lxc", []string{"ro"}, nil},
		{"options choose crun", options(`backend = "crun"`), "crun", []string{"ro", "rro"}, nil},
		{"backend without features", options(`backend = "proxmox-lxc"`), "proxmox-lxc", nil, nil},
		{"unknown backend", options(`backend = "nope"`), "", nil, errdefs.IsInvalidArgument},
		{"backend not built", options(`backend = "proxmox-vm"`), "", nil, errdefs.IsFailedPrecondition},
		{"malformed options", bytes.NewReader([]byte{0xff, 0x01}), "", nil, errdefs.IsInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := m.Info(context.Background(), tc.in)
			if tc.err != nil {
				if err == nil || !tc.err(err) {
					t.Fatalf("got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.Name != RuntimeName || info.Annotations[runtime.BackendAnnotation] != tc.backend {
				t.Errorf("info %v, want backend %s", info, tc.backend)
			}
			if tc.mountOption == nil {
				if info.Features != nil {
					t.Errorf("features %v, want none", info.Features)
				}
				return
			}
			v, err := typeurl.UnmarshalAny(info.Features)
			if err != nil {
				t.Fatal(err)
			}
			f, ok := v.(*features.Features)
			if !ok || !slices.Equal(f.MountOptions, tc.mountOption) {
				t.Errorf("features %#v, want mount options %v", v, tc.mountOption)
			}
		})
	}
}

// writeConfig writes a host configuration file with a private state folder.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte("state_dir = \""+t.TempDir()+"\"\n"+body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
