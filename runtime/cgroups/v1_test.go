package cgroups

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const v1Root = "/sys/fs/cgroup"

// v1Hierarchies are the hierarchies a test cgroup must appear in on this host.
var v1Hierarchies = []string{"memory", "pids", "cpu", "cpuacct", "blkio", "freezer"}

// requireV1 skips unless this host has the cgroup v1 hierarchies and we are root.
func requireV1(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if m := cgroups.Mode(); m != cgroups.Legacy && m != cgroups.Hybrid {
		t.Skip("host is not cgroup v1")
	}
	for _, h := range v1Hierarchies {
		if _, err := os.Stat(filepath.Join(v1Root, h, "cgroup.procs")); err != nil {
			t.Skipf("no v1 %s hierarchy: %v", h, err)
		}
	}
	t.Cleanup(func() { assertNoTestCgroups(t) })
}

// assertNoTestCgroups fails if a cgroup made by this test binary is left in any hierarchy.
func assertNoTestCgroups(t *testing.T) {
	t.Helper()
	prefix := strings.TrimPrefix(testName(), "/")
	prefix = prefix[:strings.LastIndex(prefix, "-")+1]
	left, _ := filepath.Glob(filepath.Join(v1Root, "*", prefix+"*"))
	if len(left) > 0 {
		t.Errorf("test cgroups left behind: %v", left)
	}
}

// v1Fixture is a fresh cgroup in every v1 hierarchy holding one helper process.
type v1Fixture struct {
	name  string
	raw   cgroup1.Cgroup
	cg    Cgroup
	child *child
}

// newV1Fixture makes the cgroup with cgroup1.New, moves a helper in, loads it with Load and
// releases the helper (waiting for its allocation when wait is set). Everything is removed
// when the test ends.
func newV1Fixture(t *testing.T, mode string, wait bool) *v1Fixture {
	t.Helper()
	name := testName()
	raw, err := cgroup1.New(cgroup1.StaticPath(name), &specs.LinuxResources{})
	if err != nil {
		t.Fatalf("cgroup1.New %s: %v", name, err)
	}
	t.Cleanup(func() { removeV1(t, raw, name) })
	f := &v1Fixture{name: name, raw: raw, child: startChild(t, mode)}
	if err := raw.AddProc(uint64(f.child.pid())); err != nil {
		t.Fatalf("add pid %d to %s: %v", f.child.pid(), name, err)
	}
	if f.cg, err = Load(name); err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	f.child.release(t, wait)
	return f
}

// removeV1 kills whatever is left in the cgroup and removes it from every hierarchy.
func removeV1(t *testing.T, raw cgroup1.Cgroup, name string) {
	t.Helper()
	_ = raw.Thaw()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if procs, err := raw.Processes(cgroup1.Pids, true); err == nil {
			for _, p := range procs {
				_ = syscall.Kill(p.Pid, syscall.SIGKILL)
			}
		}
		err := raw.Delete()
		if err == nil || errors.Is(err, cgroup1.ErrCgroupDeleted) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("remove cgroup %s: %v", name, err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// file is the path of a control file of the fixture's cgroup in hierarchy h.
func (f *v1Fixture) file(h, name string) string {
	return filepath.Join(v1Root, h, f.name, name)
}

func TestV1(t *testing.T) {
	requireV1(t)
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, f *v1Fixture)
	}{
		{"stats have memory and pids", func(t *testing.T, f *v1Fixture) {
			a, err := f.cg.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := a.GetTypeUrl(), "io.containerd.cgroups.v1.Metrics"; got != want {
				t.Errorf("type url %q, want %q", got, want)
			}
			v, err := typeurl.UnmarshalAny(a)
			if err != nil {
				t.Fatal(err)
			}
			m, ok := v.(*v1stats.Metrics)
			if !ok {
				t.Fatalf("stats are %T", v)
			}
			if m.Memory == nil || m.Memory.Usage == nil || m.Memory.Usage.Usage == 0 {
				t.Errorf("memory usage missing or zero: %+v", m.Memory)
			}
			if m.Pids == nil || m.Pids.Current < 1 {
				t.Errorf("pids current < 1: %+v", m.Pids)
			}
			if m.CPU == nil || m.CPU.Usage == nil || m.CPU.Usage.Total == 0 {
				t.Errorf("cpu usage missing or zero: %+v", m.CPU)
			}
			if m.Blkio == nil {
				t.Error("blkio stats missing")
			}
			if m.MemoryOomControl == nil {
				t.Error("oom control stats missing")
			}
		}},
		{"update memory limit", func(t *testing.T, f *v1Fixture) {
			limit := int64(96 << 20)
			if err := f.cg.Update(ctx, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}); err != nil {
				t.Fatal(err)
			}
			if got := readTrim(t, f.file("memory", "memory.limit_in_bytes")); got != "100663296" {
				t.Errorf("memory.limit_in_bytes %s, want 100663296", got)
			}
		}},
		{"update pids limit", func(t *testing.T, f *v1Fixture) {
			if err := f.cg.Update(ctx, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(64))}}); err != nil {
				t.Fatal(err)
			}
			if got := readTrim(t, f.file("pids", "pids.max")); got != "64" {
				t.Errorf("pids.max %s, want 64", got)
			}
		}},
		{"update nil resources", func(t *testing.T, f *v1Fixture) {
			if err := f.cg.Update(ctx, nil); !errdefs.IsInvalidArgument(err) {
				t.Errorf("Update(nil) = %v, want InvalidArgument", err)
			}
		}},
		{"freeze and thaw", func(t *testing.T, f *v1Fixture) {
			if err := f.cg.Freeze(ctx); err != nil {
				t.Fatal(err)
			}
			if got := readTrim(t, f.file("freezer", "freezer.state")); got != "FROZEN" {
				t.Errorf("after Freeze freezer.state %s", got)
			}
			if err := f.cg.Thaw(ctx); err != nil {
				t.Fatal(err)
			}
			if got := readTrim(t, f.file("freezer", "freezer.state")); got != "THAWED" {
				t.Errorf("after Thaw freezer.state %s", got)
			}
		}},
		{"pids list the child", func(t *testing.T, f *v1Fixture) {
			pids, err := f.cg.Pids(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(pids, []int{f.child.pid()}) {
				t.Errorf("pids %v, want [%d]", pids, f.child.pid())
			}
		}},
		{"load by pid", func(t *testing.T, f *v1Fixture) {
			cg, err := LoadByPid(f.child.pid())
			if err != nil {
				t.Fatal(err)
			}
			pids, err := cg.Pids(ctx)
			if err != nil || !slices.Contains(pids, f.child.pid()) {
				t.Errorf("pids %v (%v), want %d", pids, err, f.child.pid())
			}
			if _, err := cg.Stats(ctx); err != nil {
				t.Error(err)
			}
		}},
		{"kill all", func(t *testing.T, f *v1Fixture) {
			if err := f.cg.KillAll(ctx, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			f.child.waitSignaled(t, syscall.SIGKILL)
			if got := readTrim(t, f.file("freezer", "freezer.state")); got != "THAWED" {
				t.Errorf("after KillAll freezer.state %s", got)
			}
		}},
		{"kill all of a paused cgroup", func(t *testing.T, f *v1Fixture) {
			if err := f.cg.Freeze(ctx); err != nil {
				t.Fatal(err)
			}
			if err := f.cg.KillAll(ctx, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			f.child.waitSignaled(t, syscall.SIGKILL)
		}},
		{"sigterm keeps a paused cgroup paused", func(t *testing.T, f *v1Fixture) {
			if err := f.cg.Freeze(ctx); err != nil {
				t.Fatal(err)
			}
			if err := f.cg.KillAll(ctx, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if got := readTrim(t, f.file("freezer", "freezer.state")); got != "FROZEN" {
				t.Errorf("after KillAll(SIGTERM) freezer.state %s", got)
			}
			time.Sleep(50 * time.Millisecond)
			if !f.child.alive() {
				t.Error("frozen child died before thaw")
			}
			if err := f.cg.Thaw(ctx); err != nil {
				t.Fatal(err)
			}
			f.child.waitSignaled(t, syscall.SIGTERM)
		}},
		{"oom killed is zero", func(t *testing.T, f *v1Fixture) {
			n, err := f.cg.OOMKilled()
			if err != nil || n != 0 {
				t.Errorf("OOMKilled() = %d, %v", n, err)
			}
		}},
		{"oom events end with ctx", func(t *testing.T, f *v1Fixture) {
			ctx, cancel := context.WithCancel(ctx)
			ch, err := f.cg.OOMEvents(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cancel()
			expectClosed(t, ch)
		}},
		{"removed cgroup is not found", func(t *testing.T, f *v1Fixture) {
			ch, err := f.cg.OOMEvents(ctx)
			if err != nil {
				t.Fatal(err)
			}
			removeV1(t, f.raw, f.name)
			expectClosed(t, ch)
			if _, err := f.cg.Stats(ctx); !errdefs.IsNotFound(err) {
				t.Errorf("Stats = %v, want NotFound", err)
			}
			if _, err := f.cg.Pids(ctx); !errdefs.IsNotFound(err) {
				t.Errorf("Pids = %v, want NotFound", err)
			}
			if _, err := f.cg.OOMKilled(); !errdefs.IsNotFound(err) {
				t.Errorf("OOMKilled = %v, want NotFound", err)
			}
			if err := f.cg.Freeze(ctx); !errdefs.IsNotFound(err) {
				t.Errorf("Freeze = %v, want NotFound", err)
			}
			if _, err := Load(f.name); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), f.name) {
				t.Errorf("Load = %v, want NotFound naming %s", err, f.name)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newV1Fixture(t, "sleep", true))
		})
	}
}

func TestV1OOM(t *testing.T) {
	requireV1(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := newV1FixtureHeld(t, "alloc")
	limit := int64(8 << 20)
	if err := f.cg.Update(ctx, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &limit}}); err != nil {
		t.Fatal(err)
	}
	ch, err := f.cg.OOMEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.child.release(t, false)
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatal("oom channel closed before an event")
		}
	case <-ctx.Done():
		t.Fatal("no oom event")
	}
	f.child.waitSignaled(t, syscall.SIGKILL)
	n, err := f.cg.OOMKilled()
	if err != nil || n < 1 {
		t.Fatalf("OOMKilled() = %d, %v, want >= 1", n, err)
	}
	// A second watcher starts from the cgroup's creation: it delivers the kill at once.
	ch2, err := f.cg.OOMEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < n; i++ {
		select {
		case <-ch2:
		case <-time.After(5 * time.Second):
			t.Fatalf("second watcher delivered %d of %d kills", i, n)
		}
	}
	removeV1(t, f.raw, f.name)
	expectClosed(t, ch)
	expectClosed(t, ch2)
}

// newV1FixtureHeld is newV1Fixture without releasing the helper.
func newV1FixtureHeld(t *testing.T, mode string) *v1Fixture {
	t.Helper()
	name := testName()
	raw, err := cgroup1.New(cgroup1.StaticPath(name), &specs.LinuxResources{})
	if err != nil {
		t.Fatalf("cgroup1.New %s: %v", name, err)
	}
	t.Cleanup(func() { removeV1(t, raw, name) })
	f := &v1Fixture{name: name, raw: raw, child: startChild(t, mode)}
	if err := raw.AddProc(uint64(f.child.pid())); err != nil {
		t.Fatal(err)
	}
	if f.cg, err = LoadByPid(f.child.pid()); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestLoadErrors(t *testing.T) {
	requireV1(t)
	tests := []struct {
		name string
		load func() (Cgroup, error)
		is   func(error) bool
	}{
		{"missing absolute path", func() (Cgroup, error) { return Load("/lxcri-cgroups-test-missing") }, errdefs.IsNotFound},
		{"missing nested path", func() (Cgroup, error) { return Load("lxcri-cgroups-test-missing") }, errdefs.IsNotFound},
		{"empty path", func() (Cgroup, error) { return Load("") }, errdefs.IsInvalidArgument},
		{"escaping path", func() (Cgroup, error) { return Load("../x") }, errdefs.IsInvalidArgument},
		{"systemd path", func() (Cgroup, error) { return Load("system.slice:cri-containerd:abc") }, errdefs.IsNotImplemented},
		{"pid zero", func() (Cgroup, error) { return LoadByPid(0) }, errdefs.IsInvalidArgument},
		{"dead pid", func() (Cgroup, error) { return LoadByPid(deadPid(t)) }, errdefs.IsNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cg, err := tc.load()
			if !tc.is(err) {
				t.Errorf("got %v, %v", cg, err)
			}
		})
	}
}

// expectClosed waits for ch to be closed, discarding values.
func expectClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("oom channel not closed")
		}
	}
}

func ptr[T any](v T) *T { return &v }
