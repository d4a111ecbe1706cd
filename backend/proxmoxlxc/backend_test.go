package proxmoxlxc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/proxmox/pvesim"
	"github.com/lxcri/lxcri/proxmox/taskguest"
	"github.com/lxcri/lxcri/runtime"
)

// These tests drive the backend against pvesim without starting a CT (no LXC container
// runs): create, delete, crash cleanup, a failed create and a checkpoint on storage without
// snapshots. Starting CTs and their processes is covered through containerd in
// integration/shim.

type testEnv struct {
	sim *pvesim.Server
	b   *backend
}

func newTestEnv(t *testing.T, edit func(*runtime.ProxmoxConfig)) *testEnv {
	t.Helper()
	sim, err := pvesim.New(pvesim.Config{Dir: t.TempDir(), AuthFailDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	c := runtime.DefaultConfig()
	if err := c.MergeFile(filepath.Join(sim.Dir(), "lxcri.toml"), true); err != nil {
		t.Fatal(err)
	}
	c.Proxmox.LXCPath = sim.LXCPath()
	if edit != nil {
		edit(&c.Proxmox)
	}
	pause := filepath.Join(t.TempDir(), PauseBinary)
	os.WriteFile(pause, []byte("\x7fELF stand-in: no CT is started here"), 0o755)
	b, err := newBackend(context.Background(), &c.Proxmox, pause, "/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{sim: sim, b: b}
}

func (e *testEnv) create(t *testing.T, id string) (runtime.Container, *runtime.CreateRequest, error) {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	os.WriteFile(filepath.Join(root, "bin", "true"), []byte("#!/bin/sh\n"), 0o755)
	ctx := context.Background()
	pio, err := runtime.NewIO(ctx, id, runtime.Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pio.Close() })
	req := &runtime.CreateRequest{ID: id, Namespace: "test", Bundle: t.TempDir(), Rootfs: root,
		Spec: defaultSpec(t, oci.WithDefaultUnixDevices, oci.WithProcessArgs("/bin/true")), StateDir: t.TempDir(), IO: pio}
	c, err := e.b.Create(ctx, req)
	return c, req, err
}

func (e *testEnv) cts(t *testing.T) []int {
	t.Helper()
	ids, err := findCT(context.Background(), e.b.api, taskguest.OwnerTag)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestCreateDeleteCleanup(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t, nil)

	c, req, err := e.create(t, "c1")
	if err != nil {
		t.Fatal(err)
	}
	ids := e.cts(t)
	if len(ids) != 1 {
		t.Fatalf("CTs %v after one create", ids)
	}
	r, err := kind.ReadRecord(req.Bundle)
	if err != nil || r.VMID != ids[0] || r.Tag != taskguest.IDTag("test", "c1") {
		t.Fatalf("record %+v %v, CT %d", r, err, ids[0])
	}
	// A second task of the same name is refused while its CT exists.
	if _, _, err := e.create(t, "c1"); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second create of c1: %v", err)
	}
	if err := c.Delete(ctx, true); err != nil {
		t.Fatal(err)
	}
	if ids := e.cts(t); len(ids) != 0 {
		t.Fatalf("CTs %v after delete", ids)
	}
	// The init of a deleted created task ends, so the shim can publish its exit.
	select {
	case <-c.Init().Done():
	default:
		t.Fatal("the init of a deleted, never started container is not done")
	}
	if _, err := kind.ReadRecord(req.Bundle); !os.IsNotExist(err) {
		t.Fatalf("record after delete: %v", err)
	}

	// After a shim crash: found by the record, or by the tag alone when the record is gone.
	for _, withRecord := range []bool{true, false} {
		_, req, err := e.create(t, "c2")
		if err != nil {
			t.Fatal(err)
		}
		if !withRecord {
			kind.RemoveRecord(req.Bundle)
		}
		if err := e.b.Cleanup(ctx, &runtime.CleanupRequest{ID: "c2", Namespace: "test", Bundle: req.Bundle}); err != nil {
			t.Fatalf("cleanup (record %v): %v", withRecord, err)
		}
		if ids := e.cts(t); len(ids) != 0 {
			t.Fatalf("CTs %v after cleanup (record %v)", ids, withRecord)
		}
	}
	// Nothing left: cleanup succeeds.
	if err := e.b.Cleanup(ctx, &runtime.CleanupRequest{ID: "c2", Namespace: "test", Bundle: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
}

func TestFailedCreateLeavesNoCT(t *testing.T) {
	e := newTestEnv(t, nil)
	if err := e.sim.AddFault(pvesim.Fault{Method: "POST", Path: "^/nodes/[^/]+/lxc$", Kind: pvesim.FaultTaskFail, Message: "unable to create CT - disk quota exceeded"}); err != nil {
		t.Fatal(err)
	}
	_, req, err := e.create(t, "c1")
	if err == nil || !strings.Contains(err.Error(), "unable to create CT - disk quota exceeded") {
		t.Fatalf("create under a failing task: %v", err)
	}
	t.Logf("error: %v", err)
	if ids := e.cts(t); len(ids) != 0 {
		t.Fatalf("CTs %v after a failed create", ids)
	}
	if _, err := kind.ReadRecord(req.Bundle); !os.IsNotExist(err) {
		t.Fatalf("record after a failed create: %v", err)
	}
}

func TestCheckpointNeedsSnapshotStorage(t *testing.T) {
	ctx := context.Background()
	// "local" is a directory storage: CT disks, no snapshots.
	e := newTestEnv(t, func(c *runtime.ProxmoxConfig) { c.Storage = "local" })
	c, _, err := e.create(t, "c1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Delete(ctx, true)
	err = c.Checkpoint(ctx, &runtime.CheckpointRequest{Path: t.TempDir()})
	t.Logf("error: %v", err)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "snapshot feature is not available") {
		t.Fatalf("checkpoint on storage without snapshots: %v", err)
	}
}
