package shim

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
)

// TestGroupSockets: a grouped shim server knows the sockets the manager made for its
// group (in the folder the bundle's link names, else containerd's default), so that it can
// remove them on exit; a shim of one task leaves that to pkg/shim.
func TestGroupSockets(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "ns1")
	const grpc = "/run/c/containerd.sock"
	want := func(dir, group string) []string {
		var out []string
		for _, debug := range []bool{false, true} {
			a, err := shim.CreateSocketAddress(ctx, dir, grpc, group, debug)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, a)
		}
		return out
	}
	socketDir := t.TempDir()
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		link        bool
		want        []string
	}{
		{"sandbox group", map[string]string{"io.kubernetes.cri.sandbox-id": "pod1"}, true, want(socketDir, "pod1")},
		{"lxcri group", map[string]string{"io.containerd.lxcri.v2.group": "g1"}, true, want(socketDir, "g1")},
		{"group, no link", map[string]string{"io.kubernetes.cri.sandbox-id": "pod1"}, false, want(filepath.Join(defaults.DefaultStateDir, "s"), "pod1")},
		{"group is the id", map[string]string{"io.kubernetes.cri.sandbox-id": "task1"}, true, nil},
		{"no group", nil, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle := t.TempDir()
			b, _ := json.Marshal(map[string]any{"annotations": tc.annotations})
			if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.link {
				if err := os.Symlink(socketDir, filepath.Join(bundle, socketDirLink)); err != nil {
					t.Fatal(err)
				}
			}
			got := groupSockets(ctx, bundle, "task1", grpc)
			if len(got) != len(tc.want) {
				t.Fatalf("groupSockets = %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("groupSockets[%d] = %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}
