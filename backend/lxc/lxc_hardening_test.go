package lxc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/runtime"
)

// TestLXCMountThroughImageSymlink: an image symlink on the way to a mount point leads
// nowhere outside the rootfs; the mount point is made inside it or refused.
func TestLXCMountThroughImageSymlink(t *testing.T) {
	ctx := testCtx()
	helper, _, exits := lxcEnv(t)
	for _, c := range []struct {
		name   string
		inside bool // the symlink's target exists inside the rootfs too
	}{{"target missing in the rootfs", false}, {"target present in the rootfs", true}} {
		t.Run(c.name, func(t *testing.T) {
			rootfs, err := busyboxRootfs(filepath.Join(t.TempDir(), "rootfs"))
			if err != nil {
				t.Fatal(err)
			}
			outside := t.TempDir()
			if err := os.Symlink(outside, filepath.Join(rootfs, "lnk")); err != nil {
				t.Fatal(err)
			}
			if c.inside {
				os.MkdirAll(filepath.Join(rootfs, outside), 0o755)
			}
			bundle := t.TempDir()
			os.WriteFile(filepath.Join(bundle, "nologin"), []byte("no\n"), 0o644)
			spec := baseSpec(t)
			id := "lxcri-test-symlink-" + map[bool]string{false: "out", true: "in"}[c.inside]
			spec.Linux.CgroupsPath = "/" + testCgroupParent + "/" + id
			spec.Process.Args = []string{"true"}
			spec.Mounts = append(spec.Mounts,
				specs.Mount{Destination: "/lnk/nologin", Type: "bind", Source: filepath.Join(bundle, "nologin"), Options: []string{"rbind", "ro"}},
				specs.Mount{Destination: "/lnk/sub", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid"}},
			)
			b, err := New(ctx, &runtime.Config{LXC: runtime.LXCConfig{Helper: helper}})
			if err != nil {
				t.Fatal(err)
			}
			stateDir := filepath.Join(t.TempDir(), "default", id)
			ctr, err := b.Create(ctx, &runtime.CreateRequest{
				ID: id, Namespace: "default", Bundle: bundle, Rootfs: rootfs, Spec: spec,
				StateDir: stateDir, IO: newTestIO(t, ctx, id, false, false).io, Exits: exits, Config: &runtime.Config{},
			})
			if err == nil {
				// Whatever liblxc made of it, the container goes away again.
				ctr.Delete(ctx, true)
				select {
				case <-ctr.Init().Done():
				case <-time.After(5 * time.Second):
					t.Error("init did not end")
				}
			} else {
				t.Logf("create: %v", err)
			}
			emptyDir(t, outside)
			if c.inside {
				if _, err := os.Stat(filepath.Join(rootfs, outside, "nologin")); err != nil {
					t.Errorf("mount point not made inside the rootfs: %v", err)
				}
			}
		})
	}
}

// TestLXCSeccompRuntimeDefault: containerd's RuntimeDefault profile for a container
// without CAP_SYS_ADMIN loads and denies unshare, which the container may call without it;
// an errno rule without errnoRet returns EPERM, and a rule equal to the default action is
// no error.
func TestLXCSeccompRuntimeDefault(t *testing.T) {
	ctx := testCtx()
	enosys := uint(38)
	unshareRule := specs.LinuxSyscall{Names: []string{"unshare"}, Action: specs.ActErrno}
	for _, c := range []struct {
		name    string
		profile func(s *specs.Spec) *specs.LinuxSeccomp
		want    string
	}{
		{"without seccomp", func(*specs.Spec) *specs.LinuxSeccomp { return nil }, "rc=0"},
		{"RuntimeDefault", seccomp.DefaultProfile, "Operation not permitted"},
		{"rule equal to the default", func(s *specs.Spec) *specs.LinuxSeccomp {
			p := seccomp.DefaultProfile(s)
			p.Syscalls = append(p.Syscalls, unshareRule)
			return p
		}, "Operation not permitted"},
		{"errno rule without errnoRet", func(s *specs.Spec) *specs.LinuxSeccomp {
			p := seccomp.DefaultProfile(s)
			p.DefaultErrnoRet = &enosys
			p.Syscalls = append(p.Syscalls, unshareRule)
			return p
		}, "Operation not permitted"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctr := newTestContainer(t, ctx, func(s *specs.Spec) {
				s.Process.Args = []string{"sh", "-c", "unshare -U true 2>&1; echo rc=$?"}
				s.Linux.Seccomp = c.profile(s)
			})
			for _, keep := range ctr.res.Get("lxc.cap.keep") {
				if strings.Contains(keep, "sys_admin") {
					t.Fatalf("the container keeps sys_admin: %s", keep)
				}
			}
			if err := ctr.Start(ctx); err != nil {
				t.Fatal(err)
			}
			e := ctr.wait(ctr.Init(), 10*time.Second)
			ctr.io.drain(ctx, ctr.Init())
			if e.Status != 0 || !strings.Contains(ctr.io.stdout(), c.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %q", e.Status, ctr.io.stdout(), ctr.io.stderr(), c.want)
			}
			t.Logf("%s", ctr.io.stdout())
		})
	}
}
