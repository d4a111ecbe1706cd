package proxmoxvm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/proxmox/taskguest"
	"github.com/lxcri/lxcri/runtime"
)

// container is one containerd task: a VM cloned from the template, its init run by the
// launcher in the guest.
type container struct {
	b      *backend
	id     string
	ns     string
	bundle string
	vmid   int
	tag    string
	init   *process

	mu      sync.Mutex
	execs   map[string]*process
	nexec   int
	started time.Time
	// restored: the init runs already, resumed with the VM's RAM
	restored bool
	// checkpoints made of this VM: Delete keeps a VM whose snapshot a restore may need
	checkpoints []string
}

func (c *container) Init() runtime.Process { return c.init }

// Start runs the init process in the guest.
func (c *container) Start(ctx context.Context) error {
	c.mu.Lock()
	c.started = time.Now()
	restored := c.restored
	c.mu.Unlock()
	if restored {
		return c.init.adopt(ctx)
	}
	return c.init.launch(ctx)
}

// initExited ends the output pumps of the execs once the task's init has exited; the VM
// runs on until the task is deleted.
func (c *container) initExited() {
	c.mu.Lock()
	execs := make([]*process, 0, len(c.execs))
	for _, e := range c.execs {
		execs = append(execs, e)
	}
	c.mu.Unlock()
	for _, e := range execs {
		e.stop()
	}
}

func (c *container) Exec(ctx context.Context, req *runtime.ExecRequest) (runtime.Process, error) {
	ps, err := translateProcess(req.Spec, false)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.execs[req.ID]; ok {
		return nil, fmt.Errorf("exec %s exists: %w", req.ID, errdefs.ErrAlreadyExists)
	}
	c.nexec++
	p := &process{Proc: runtime.NewProc(req.ID, req.IO), c: c, spec: *ps, dir: guestProcs + "/e" + strconv.Itoa(c.nexec)}
	c.execs[req.ID] = p
	return p, nil
}

// KillAll signals the init's process group and every exec.
func (c *container) KillAll(ctx context.Context, sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		return c.b.api.StopVM(ctx, c.vmid)
	}
	c.mu.Lock()
	procs := []*process{c.init}
	for _, e := range c.execs {
		procs = append(procs, e)
	}
	c.mu.Unlock()
	for _, p := range procs {
		if p.Pid() != 0 && !p.Exited() {
			p.Kill(ctx, sig)
		}
	}
	return nil
}

// Pause suspends the VM; Resume resumes it.
func (c *container) Pause(ctx context.Context) error  { return c.b.api.SuspendVM(ctx, c.vmid) }
func (c *container) Resume(ctx context.Context) error { return c.b.api.ResumeVM(ctx, c.vmid) }

// Pids are the guest pids of the processes the launcher started (not their children).
func (c *container) Pids(ctx context.Context) ([]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var pids []int
	for _, p := range append([]*process{c.init}, mapValues(c.execs)...) {
		if pid := p.Pid(); pid != 0 && !p.Exited() {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func mapValues(m map[string]*process) []*process {
	out := make([]*process, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// Stats reads the VM's status/current into cgroup v1 metrics: memory use and size, and
// CPU time estimated from PVE's CPU share since the task started (PVE reports no
// cumulative CPU time for a VM).
func (c *container) Stats(ctx context.Context) (typeurl.Any, error) {
	st, err := c.b.api.VMStatus(ctx, c.vmid)
	if err != nil {
		return nil, err
	}
	cpuNs := uint64(st.CPU * st.CPUs * float64(st.Uptime) * 1e9)
	m := &v1stats.Metrics{
		Memory: &v1stats.MemoryStat{Usage: &v1stats.MemoryEntry{Usage: st.Mem, Limit: st.MaxMem}},
		CPU:    &v1stats.CPUStat{Usage: &v1stats.CPUUsage{Total: cpuNs}},
	}
	return typeurl.MarshalAny(m)
}

// Update resizes the VM: memory and CPU limits apply at its next start (PVE's pending
// changes), which a running task's VM does not have.
func (c *container) Update(ctx context.Context, res *specs.LinuxResources) error {
	vs := &VMSpec{Options: map[string]any{}}
	if err := translateResources(res, vs); err != nil {
		return err
	}
	if len(vs.Options) == 0 {
		return nil
	}
	return c.b.api.SetVMConfig(ctx, c.vmid, vs.Options)
}

func (c *container) OOM() <-chan struct{} { return nil }

// checkpointRef is what a checkpoint path holds: the VM and its snapshot with vmstate,
// and how much of the init's output was delivered.
type checkpointRef struct {
	Node     string `json:"node"`
	VMID     int    `json:"vmid"`
	Snapshot string `json:"snapshot"`
	OutOff   int64  `json:"out_off"`
	ErrOff   int64  `json:"err_off"`
}

// Checkpoint takes a snapshot of the VM with its RAM; a restore rolls the VM back to it,
// and the task's processes go on where they were. Without Exit the VM runs on (PVE
// resumes it after saving its state).
func (c *container) Checkpoint(ctx context.Context, req *runtime.CheckpointRequest) error {
	name := fmt.Sprintf("ckpt%d", time.Now().UnixNano()/1e6)
	if err := c.b.api.CreateVMSnapshot(ctx, c.vmid, name, "containerd checkpoint of task "+c.id, true); err != nil {
		return err
	}
	c.mu.Lock()
	c.checkpoints = append(c.checkpoints, name)
	c.mu.Unlock()
	outOff, errOff := c.init.offsets()
	ref := checkpointRef{Node: c.b.api.Node(), VMID: c.vmid, Snapshot: name, OutOff: outOff, ErrOff: errOff}
	b, err := json.Marshal(ref)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(req.Path, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(req.Path+"/"+CheckpointFile, b, 0o600); err != nil {
		return err
	}
	if req.Exit {
		return c.b.api.StopVM(ctx, c.vmid)
	}
	return nil
}

// Delete stops the VM and destroys it with its disks, unless a checkpoint of it may still
// be restored: then the VM is kept, stopped, with its snapshots.
func (c *container) Delete(ctx context.Context, force bool) error {
	if !c.init.Exited() && c.init.Pid() != 0 && !force {
		return fmt.Errorf("container %s is running: %w", c.id, errdefs.ErrFailedPrecondition)
	}
	if err := c.b.api.StopVM(ctx, c.vmid); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	c.mu.Lock()
	keep := len(c.checkpoints) > 0
	c.mu.Unlock()
	if keep {
		if err := c.b.api.SetVMConfig(ctx, c.vmid, map[string]any{"tags": taskguest.OwnerTag + ";" + keptTag}); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	} else if err := c.b.api.DeleteVM(ctx, c.vmid); err != nil {
		return err
	}
	kind.RemoveRecord(c.bundle)
	if c.init.Pid() == 0 {
		c.init.SetExited(128 + int(syscall.SIGKILL))
	}
	return nil
}
