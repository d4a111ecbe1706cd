package shim

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fakeShimEnv makes the test binary, started by manager.Start as the shim server, stand in
// for it: it accepts one connection on the socket it inherited and exits.
const fakeShimEnv = "LXCRI_TEST_FAKE_SHIM_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(fakeShimEnv) != "" {
		l, err := net.FileListener(os.NewFile(3, "socket"))
		if err != nil {
			os.Exit(3)
		}
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestManagerStart: start launches the shim server on a socket named for the container's
// group, in the ShimCgroup of runc's options; a second container of the group reuses it.
func TestManagerStart(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (cgroups)")
	}
	t.Setenv(fakeShimEnv, "1")
	bundle := writeBundle(t, &specs.Spec{Process: &specs.Process{Args: []string{"sh"}},
		Annotations: map[string]string{"io.containerd.lxcri.v2.group": "g1"}})
	t.Chdir(bundle)
	cgPath := fmt.Sprintf("/lxcri-test-start-%d", os.Getpid())
	procs := filepath.Join("/sys/fs/cgroup/pids", cgPath, "cgroup.procs")
	var cleanup func() error
	if cgroups.Mode() == cgroups.Unified {
		mgr, err := cgroup2.NewManager("/sys/fs/cgroup", cgPath, &cgroup2.Resources{})
		if err != nil {
			t.Fatal(err)
		}
		cleanup, procs = mgr.Delete, filepath.Join("/sys/fs/cgroup", cgPath, "cgroup.procs")
	} else {
		cg, err := cgroup1.New(cgroup1.StaticPath(cgPath), &specs.LinuxResources{})
		if err != nil {
			t.Fatal(err)
		}
		cleanup = cg.Delete
	}
	defer func() {
		// The server exits once it accepted a connection: wait for it to leave the cgroup.
		deadline := time.Now().Add(10 * time.Second)
		for {
			b, _ := os.ReadFile(procs)
			if strings.TrimSpace(string(b)) == "" || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()

	sockets := t.TempDir()
	params := &bootapi.BootstrapParams{InstanceID: "c1", SocketDir: &sockets, ContainerdGrpcAddress: "/run/test-containerd.sock"}
	if err := params.AddExtension(&options.Options{ShimCgroup: cgPath}); err != nil {
		t.Fatal(err)
	}
	m := NewManager(Registry{})
	ctx := namespaces.WithNamespace(context.Background(), "unit")
	res, err := m.Start(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if res.Address == "" || res.Protocol != "ttrpc" || res.Version != 3 {
		t.Errorf("result %v", res)
	}
	b, err := os.ReadFile(procs)
	if err != nil || len(strings.Fields(string(b))) != 1 {
		t.Errorf("shim cgroup holds %q (%v), want the shim server", b, err)
	}
	// Another container of the group: the live server is reused (its socket answers).
	res2, err := m.Start(ctx, &bootapi.BootstrapParams{InstanceID: "c2", SocketDir: &sockets, ContainerdGrpcAddress: "/run/test-containerd.sock"})
	if err != nil || res2.Address != res.Address {
		t.Errorf("second start: %v %v, want address %s", res2, err, res.Address)
	}
	if b, _ := os.ReadFile(procs); len(strings.Fields(string(b))) > 1 {
		t.Errorf("a second server was started: %q", b)
	}
}
