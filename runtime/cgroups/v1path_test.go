package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup1"
)

// TestV1ProcPathFallback covers a /proc/PID/cgroup listing a v1 hierarchy that has no mount
// here, which makes cgroup1.PidPath fail for every controller.
func TestV1ProcPathFallback(t *testing.T) {
	requireV1(t)
	proc := filepath.Join(t.TempDir(), "cgroup")
	content := "11:name=lxcri-unmounted:/\n10:hugetlb:/\n9:name=systemd:/lxc.payload.c1\n4:memory:/lxc.payload.c1\n0::/\n"
	if err := os.WriteFile(proc, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	broken := func(cgroup1.Name) (string, error) { return "", cgroup1.ErrNoCgroupMountDestination }
	tests := []struct {
		name    string
		suffix  string
		sub     cgroup1.Name
		want    string
		wantErr error
	}{
		{"memory", "", cgroup1.Memory, "/lxc.payload.c1", nil},
		{"named systemd", "", cgroup1.SystemdDbus, "/lxc.payload.c1", nil},
		{"nested", "c2", cgroup1.Memory, "/lxc.payload.c1/c2", nil},
		{"not listed", "", cgroup1.Pids, "", cgroup1.ErrControllerNotActive},
		{"listed, not mounted", "", cgroup1.Name("lxcri-unmounted"), "", cgroup1.ErrNoCgroupMountDestination},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v1ProcPath(proc, tc.suffix, broken)(tc.sub)
			if got != tc.want || !errors.Is(err, tc.wantErr) {
				t.Errorf("got %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
	working := cgroup1.StaticPath("/x")
	if got, _ := v1ProcPath(proc, "", working)(cgroup1.Memory); got != "/x" {
		t.Errorf("working library path replaced: %q", got)
	}
}
