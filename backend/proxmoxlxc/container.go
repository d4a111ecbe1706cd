package proxmoxlxc

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/proxmox/taskguest"
	"github.com/lxcri/lxcri/runtime"
	"github.com/lxcri/lxcri/runtime/cgroups"
)

type container struct {
	b      *backend
	id     string
	ns     string
	bundle string
	vmid   int
	tag    string
	exits  *runtime.ExitWatcher
	init   *process
	files  []PodFile // the pod's files, written into the CT's root at Start

	mu      sync.Mutex
	started bool
	cg      cgroups.Cgroup // the CT's cgroup, once it runs
}

func newContainer(b *backend, req *runtime.CreateRequest, vmid int, ct *CTSpec) *container {
	c := &container{b: b, id: req.ID, ns: req.Namespace, bundle: req.Bundle, vmid: vmid, tag: taskguest.IDTag(req.Namespace, req.ID), exits: req.Exits, files: ct.Files}
	c.init = newProcess(c, req.ID, req.IO, req.Spec.Process, true)
	return c
}

func (c *container) Init() runtime.Process { return c.init }

// Start starts the CT through PVE (its init is lxcri-pause) and attaches the task's init
// process to it.
func (c *container) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return fmt.Errorf("container %s was started already: %w", c.id, errdefs.ErrFailedPrecondition)
	}
	c.started = true
	c.mu.Unlock()
	if err := c.b.api.StartCT(ctx, c.vmid); err != nil {
		return err
	}
	st, err := c.b.api.CTStatus(ctx, c.vmid)
	if err != nil {
		return err
	}
	if !st.Running() || st.Pid == 0 {
		return fmt.Errorf("CT %d is %s after its start task succeeded: %w", c.vmid, st.Status, errdefs.ErrFailedPrecondition)
	}
	cg, err := cgroups.LoadByPid(int(st.Pid))
	if err != nil {
		return fmt.Errorf("CT %d's cgroup: %w", c.vmid, err)
	}
	c.mu.Lock()
	c.cg = cg
	c.mu.Unlock()
	if err := writePodFiles(int(st.Pid), c.files); err != nil {
		c.stopQuietly(ctx)
		return fmt.Errorf("CT %d: %w", c.vmid, err)
	}
	if err := c.init.attach(ctx); err != nil {
		c.stopQuietly(ctx)
		return err
	}
	return nil
}

// initExited ends the CT once the task's init is gone: every other process of a task dies
// with its init, and PVE sees the CT stop when its own init (lxcri-pause) does.
func (c *container) initExited() {
	c.mu.Lock()
	cg := c.cg
	c.mu.Unlock()
	if cg != nil {
		if err := cg.KillAll(context.Background(), syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
			log.L.WithError(err).WithField("vmid", c.vmid).Warn("proxmox-lxc: kill the CT's processes after its init exited")
		}
	}
}

func (c *container) stopQuietly(ctx context.Context) {
	if err := c.b.api.StopCT(context.WithoutCancel(ctx), c.vmid); err != nil && !errdefs.IsFailedPrecondition(err) {
		log.G(ctx).WithError(err).WithField("vmid", c.vmid).Warn("proxmox-lxc: stop the CT")
	}
}

func (c *container) cgroup() (cgroups.Cgroup, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cg == nil {
		return nil, fmt.Errorf("CT %d is not running: %w", c.vmid, errdefs.ErrFailedPrecondition)
	}
	return c.cg, nil
}

func (c *container) Exec(ctx context.Context, req *runtime.ExecRequest) (runtime.Process, error) {
	if req.Spec == nil {
		return nil, fmt.Errorf("exec %s: no process spec: %w", req.ID, errdefs.ErrInvalidArgument)
	}
	if err := checkExec(req.Spec); err != nil {
		return nil, err
	}
	return newProcess(c, req.ID, req.IO, req.Spec, false), nil
}

func (c *container) KillAll(ctx context.Context, sig syscall.Signal) error {
	cg, err := c.cgroup()
	if err != nil {
		if !c.isStarted() {
			return nil
		}
		return err
	}
	if err := cg.KillAll(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

func (c *container) isStarted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

// Pause and Resume freeze the CT through PVE, so its state shows there too.
func (c *container) Pause(ctx context.Context) error  { return c.b.api.SuspendCT(ctx, c.vmid) }
func (c *container) Resume(ctx context.Context) error { return c.b.api.ResumeCT(ctx, c.vmid) }

func (c *container) Pids(ctx context.Context) ([]int, error) {
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	return cg.Pids(ctx)
}

func (c *container) Stats(ctx context.Context) (typeurl.Any, error) {
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	return cg.Stats(ctx)
}

// Update changes the CT's resources through PVE (memory, swap, cores, cpulimit,
// cpuunits); what PVE cannot set is an error naming the field.
func (c *container) Update(ctx context.Context, res *specs.LinuxResources) error {
	ct := &CTSpec{Options: map[string]any{}}
	if err := translateResources(res, ct); err != nil {
		return err
	}
	if len(ct.Options) == 0 {
		return nil
	}
	return c.b.api.SetCTConfig(ctx, c.vmid, ct.Options)
}

func (c *container) OOM() <-chan struct{} { return nil }

// Delete stops and destroys the CT with its volumes.
func (c *container) Delete(ctx context.Context, force bool) error {
	if !c.init.Exited() && c.init.Pid() != 0 && !force {
		return fmt.Errorf("container %s is running: %w", c.id, errdefs.ErrFailedPrecondition)
	}
	if err := c.b.api.DeleteCT(ctx, c.vmid, true); err != nil {
		return err
	}
	kind.RemoveRecord(c.bundle)
	// An init that never ran (a created task deleted, or one whose start failed) ends here:
	// the shim publishes its exit and waits for it before TaskDelete.
	if c.init.Pid() == 0 {
		c.init.SetExited(128 + int(syscall.SIGKILL))
	}
	return nil
}

// checkpointFile, in the checkpoint's directory, names the PVE snapshot a checkpoint is.
const checkpointFile = "proxmox-lxc.json"

// Checkpoint is a descriptor of a checkpoint: a PVE snapshot of the CT.
type Checkpoint struct {
	Node     string `json:"node"`
	VMID     int    `json:"vmid"`
	Snapshot string `json:"snapshot"`
	Tag      string `json:"tag"`
}

// Checkpoint takes a PVE snapshot of the CT and writes its descriptor into req.Path.
// Storage without snapshots answers FailedPrecondition with PVE's reason. The processes'
// memory is not part of a CT snapshot: a restored task starts its process afresh on the
// snapshot's filesystem.
func (c *container) Checkpoint(ctx context.Context, req *runtime.CheckpointRequest) error {
	name := fmt.Sprintf("lxcri%d", time.Now().UnixNano())
	if err := c.b.api.CreateSnapshot(ctx, c.vmid, name, "checkpoint of containerd task "+c.ns+"/"+c.id); err != nil {
		return err
	}
	b, err := json.Marshal(Checkpoint{Node: c.b.api.Node(), VMID: c.vmid, Snapshot: name, Tag: c.tag})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(req.Path, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(req.Path, checkpointFile), b, 0o600); err != nil {
		return err
	}
	if req.Exit {
		return c.KillAll(ctx, syscall.SIGKILL)
	}
	return nil
}
