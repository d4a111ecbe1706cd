package proxmox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	goprox "github.com/luthermonson/go-proxmox"
)

// This file holds the QEMU VM calls: list, status, config, clone, power, delete,
// snapshots with vmstate, and the guest agent's ping, exec and exec-status. They go through
// the same request path as the CT calls (retries, task waits, errors with PVE's text) rather
// than go-proxmox's VirtualMachine methods, which return tasks without waiting, send no
// vmstate with a snapshot, and read exec-status into types that take the agent's answers
// only in one shape.

// MaxAgentInput is the most input-data one agent/exec takes (PVE's schema: 64 KiB).
const MaxAgentInput = 64 << 10

// VM is one entry of the node's VM list.
type VM struct {
	VMID     goprox.StringOrUint64 `json:"vmid"`
	Name     string                `json:"name"`
	Status   string                `json:"status"`
	Tags     string                `json:"tags"`
	Lock     string                `json:"lock"`
	Template goprox.IntOrBool      `json:"template"`
}

// TagList splits PVE's tag string.
func (v *VM) TagList() []string { return splitTags(v.Tags) }

// VMs lists the node's VMs (only those the token may audit).
func (c *Client) VMs(ctx context.Context) ([]VM, error) {
	var vms []VM
	err := c.do(ctx, call{method: http.MethodGet, path: c.nodePath("/qemu"), need: "VM.Audit on /vms/<vmid>"}, &vms)
	return vms, err
}

// VMStatus is a VM's status/current. QMPStatus is "paused" for a suspended VM, whose
// Status stays "running"; Pid is the host pid of its QEMU process.
type VMStatus struct {
	VMID      goprox.StringOrUint64 `json:"vmid"`
	Name      string                `json:"name"`
	Status    string                `json:"status"`
	QMPStatus string                `json:"qmpstatus"`
	Pid       goprox.StringOrUint64 `json:"pid"`
	Lock      string                `json:"lock"`
	Tags      string                `json:"tags"`
	Agent     goprox.IntOrBool      `json:"agent"`
	Template  goprox.IntOrBool      `json:"template"`
	CPUs      float64               `json:"cpus"`
	CPU       float64               `json:"cpu"`
	Mem       uint64                `json:"mem"`
	MaxMem    uint64                `json:"maxmem"`
	Disk      uint64                `json:"disk"`
	MaxDisk   uint64                `json:"maxdisk"`
	Uptime    uint64                `json:"uptime"`
	NetIn     uint64                `json:"netin"`
	NetOut    uint64                `json:"netout"`
	DiskRead  uint64                `json:"diskread"`
	DiskWrite uint64                `json:"diskwrite"`
}

// Running says whether the VM runs (suspended or not).
func (s *VMStatus) Running() bool { return s.Status == "running" }

// Paused says whether the VM is suspended.
func (s *VMStatus) Paused() bool { return s.Status == "running" && s.QMPStatus == "paused" }

// VMStatus reads status/current. A missing VM is NotFound.
func (c *Client) VMStatus(ctx context.Context, vmid int) (*VMStatus, error) {
	var st VMStatus
	if err := c.do(ctx, c.vmCall(http.MethodGet, vmid, "/status/current", nil, "VM.Audit"), &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// VMConfig reads a VM's current configuration.
func (c *Client) VMConfig(ctx context.Context, vmid int) (map[string]any, error) {
	var cfg map[string]any
	if err := c.do(ctx, c.vmCall(http.MethodGet, vmid, "/config", nil, "VM.Audit"), &cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// SetVMConfig changes VM options at once (PUT); remove lists keys to delete. Options a
// running VM cannot take at once wait for its next start, as PVE's pending changes.
func (c *Client) SetVMConfig(ctx context.Context, vmid int, set map[string]any, remove ...string) error {
	p := make(map[string]any, len(set)+1)
	for k, v := range set {
		p[k] = v
	}
	if len(remove) > 0 {
		p["delete"] = strings.Join(remove, ",")
	}
	return c.do(ctx, c.vmCall(http.MethodPut, vmid, "/config", p, "VM.Config.Options/Memory/CPU"), nil)
}

// VMCloneOptions are the choices of CloneVM.
type VMCloneOptions struct {
	// Name is the new VM's name (a DNS name).
	Name        string
	Description string
	// Full copies the disks; otherwise PVE makes a linked clone, which needs a template.
	Full bool
	// Snapshot is the snapshot to clone from; empty clones the current state.
	Snapshot string
	// Storage is the target storage of a full clone; empty keeps the source's.
	Storage string
}

// CloneVM makes VM newid a clone of VM vmid and waits for it. A taken newid is
// AlreadyExists.
func (c *Client) CloneVM(ctx context.Context, vmid, newid int, o VMCloneOptions) error {
	p := map[string]any{"newid": newid, "full": o.Full}
	if o.Snapshot != "" {
		if err := ValidSnapshotName(o.Snapshot); err != nil {
			return err
		}
		p["snapname"] = o.Snapshot
	}
	if o.Name != "" {
		p["name"] = o.Name
	}
	if o.Description != "" {
		p["description"] = o.Description
	}
	if o.Storage != "" {
		p["storage"] = o.Storage
	}
	return c.task(ctx, call{method: http.MethodPost, path: c.vmPath(vmid, "/clone"), params: p,
		need: fmt.Sprintf("VM.Clone on /vms/%d, VM.Allocate on /vms/%d and Datastore.AllocateSpace on the storage", vmid, newid)})
}

// StartVM starts a VM and waits until PVE says it runs (the guest may still be booting).
func (c *Client) StartVM(ctx context.Context, vmid int) error {
	return c.task(ctx, c.vmCall(http.MethodPost, vmid, "/status/start", nil, "VM.PowerMgmt"))
}

// StopVM stops a VM at once (QEMU is killed).
func (c *Client) StopVM(ctx context.Context, vmid int) error {
	return c.task(ctx, c.vmCall(http.MethodPost, vmid, "/status/stop", nil, "VM.PowerMgmt"))
}

// ShutdownVM asks the guest to power down (ACPI), waiting up to timeout seconds;
// forceStop stops it after that.
func (c *Client) ShutdownVM(ctx context.Context, vmid, timeout int, forceStop bool) error {
	return c.task(ctx, c.vmCall(http.MethodPost, vmid, "/status/shutdown",
		map[string]any{"timeout": timeout, "forceStop": forceStop}, "VM.PowerMgmt"))
}

// SuspendVM pauses a running VM in memory.
func (c *Client) SuspendVM(ctx context.Context, vmid int) error {
	return c.task(ctx, c.vmCall(http.MethodPost, vmid, "/status/suspend", nil, "VM.PowerMgmt"))
}

// ResumeVM resumes a paused VM.
func (c *Client) ResumeVM(ctx context.Context, vmid int) error {
	return c.task(ctx, c.vmCall(http.MethodPost, vmid, "/status/resume", nil, "VM.PowerMgmt"))
}

// DeleteVM destroys a stopped VM with its disks. A VM that is already gone is not an
// error: deleting is what callers retry after a crash.
func (c *Client) DeleteVM(ctx context.Context, vmid int) error {
	p := map[string]any{"purge": true, "destroy-unreferenced-disks": true}
	err := c.task(ctx, c.vmCall(http.MethodDelete, vmid, "", p, "VM.Allocate"))
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// VMSnapshot is one entry of a VM's snapshot list ("current" left out). VMState says the
// snapshot holds the VM's RAM.
type VMSnapshot struct {
	Name        string           `json:"name"`
	Description string           `json:"description"`
	Parent      string           `json:"parent"`
	SnapTime    int64            `json:"snaptime"`
	VMState     goprox.IntOrBool `json:"vmstate"`
}

// CreateVMSnapshot snapshots a VM; with vmstate the running VM's RAM is saved too, so a
// rollback resumes its processes where they were. go-proxmox's NewSnapshot has no vmstate.
func (c *Client) CreateVMSnapshot(ctx context.Context, vmid int, name, description string, vmstate bool) error {
	if err := ValidSnapshotName(name); err != nil {
		return err
	}
	p := map[string]any{"snapname": name}
	if description != "" {
		p["description"] = description
	}
	if vmstate {
		p["vmstate"] = true
	}
	return c.task(ctx, c.vmCall(http.MethodPost, vmid, "/snapshot", p, "VM.Snapshot"))
}

// VMSnapshots lists a VM's snapshots, without PVE's "current" entry.
func (c *Client) VMSnapshots(ctx context.Context, vmid int) ([]VMSnapshot, error) {
	var all []VMSnapshot
	if err := c.do(ctx, c.vmCall(http.MethodGet, vmid, "/snapshot", nil, "VM.Audit"), &all); err != nil {
		return nil, err
	}
	snaps := all[:0]
	for _, s := range all {
		if s.Name != "current" {
			snaps = append(snaps, s)
		}
	}
	return snaps, nil
}

// DeleteVMSnapshot removes a snapshot; a missing one is not an error.
func (c *Client) DeleteVMSnapshot(ctx context.Context, vmid int, name string) error {
	if err := ValidSnapshotName(name); err != nil {
		return err
	}
	err := c.task(ctx, c.vmCall(http.MethodDelete, vmid, "/snapshot/"+name, nil, "VM.Snapshot"))
	if errdefs.IsNotFound(err) {
		var e *Error
		if errors.As(err, &e) && strings.Contains(e.Message, "snapshot") {
			return nil
		}
	}
	return err
}

// RollbackVMSnapshot rolls a VM back to a snapshot; one with vmstate resumes the VM
// running, otherwise start starts it afterwards.
func (c *Client) RollbackVMSnapshot(ctx context.Context, vmid int, name string, start bool) error {
	if err := ValidSnapshotName(name); err != nil {
		return err
	}
	return c.task(ctx, c.vmCall(http.MethodPost, vmid, "/snapshot/"+name+"/rollback", map[string]any{"start": start}, "VM.Snapshot.Rollback"))
}

// AgentPing asks the guest agent for a sign of life once. An agent that does not answer
// (yet) is FailedPrecondition, as is a VM without an agent configured or not running.
func (c *Client) AgentPing(ctx context.Context, vmid int) error {
	k := c.vmCall(http.MethodPost, vmid, "/agent/ping", nil, "VM.GuestAgent.Audit (or VM.Monitor)")
	k.replayable = true
	return c.do(ctx, k, nil)
}

// WaitAgent pings the guest agent until it answers or within passes. A VM that has no
// agent configured, or stopped, fails at once; an agent that never answered is
// DeadlineExceeded saying so.
func (c *Client) WaitAgent(ctx context.Context, vmid int, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	interval := 50 * time.Millisecond
	for {
		err := c.AgentPing(ctx, vmid)
		if err == nil {
			return nil
		}
		if !agentNotUp(err) {
			return err
		}
		if serr := sleep(ctx, interval); serr != nil {
			return &Error{Op: fmt.Sprintf("wait for the guest agent of VM %d", vmid),
				Message: fmt.Sprintf("no answer within %s; last: %v (is qemu-guest-agent installed and running in the template's guest?)", within, err),
				kind:    context.DeadlineExceeded, cause: err}
		}
		if interval *= 2; interval > time.Second {
			interval = time.Second
		}
	}
}

// agentNotUp: the guest has not (yet) started its agent, or QMP gave up waiting for it.
func agentNotUp(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	return strings.Contains(e.Message, "QEMU guest agent is not running") || strings.Contains(e.Message, "got timeout")
}

// AgentExec starts argv in the guest through the agent, with input as its whole stdin
// (at most MaxAgentInput bytes; stdin is closed after it), and returns the agent's pid of
// it. The agent gives the process no environment, cwd or user of the caller's choosing.
// The call is not repeated after a broken connection: the process may have started.
func (c *Client) AgentExec(ctx context.Context, vmid int, argv []string, input []byte) (int, error) {
	if len(argv) == 0 || argv[0] == "" {
		return 0, fmt.Errorf("agent exec: empty command: %w", errdefs.ErrInvalidArgument)
	}
	if len(input) > MaxAgentInput {
		return 0, fmt.Errorf("agent exec: %d bytes of input, at most %d go in one call: %w", len(input), MaxAgentInput, errdefs.ErrInvalidArgument)
	}
	p := map[string]any{"command": argv}
	if input != nil {
		p["input-data"] = byteChars(input)
	}
	var res struct {
		PID int `json:"pid"`
	}
	if err := c.do(ctx, c.vmCall(http.MethodPost, vmid, "/agent/exec", p, "VM.GuestAgent.Unrestricted"), &res); err != nil {
		return 0, err
	}
	return res.PID, nil
}

// ExecStatus is what the agent says of a process it started. Out and Err are filled once
// it exited (the agent hands output over only then) and the agent then forgets it.
type ExecStatus struct {
	Exited bool
	// ExitCode is the exit status of a process that exited normally.
	ExitCode int
	// Signal is the signal that killed it, 0 if none (not every agent reports it).
	Signal       int
	Out, Err     []byte
	OutTruncated bool
	ErrTruncated bool
}

// AgentExecStatus asks for a process's status. A pid the agent does not know (never
// started, or already reported as exited) is NotFound.
func (c *Client) AgentExecStatus(ctx context.Context, vmid, pid int) (*ExecStatus, error) {
	var raw struct {
		Exited       goprox.IntOrBool `json:"exited"`
		ExitCode     int              `json:"exitcode"`
		Signal       int              `json:"signal"`
		OutData      string           `json:"out-data"`
		ErrData      string           `json:"err-data"`
		OutTruncated goprox.IntOrBool `json:"out-truncated"`
		ErrTruncated goprox.IntOrBool `json:"err-truncated"`
	}
	k := c.vmCall(http.MethodGet, vmid, "/agent/exec-status", map[string]any{"pid": pid}, "VM.GuestAgent.Unrestricted")
	if err := c.do(ctx, k, &raw); err != nil {
		return nil, err
	}
	return &ExecStatus{
		Exited: bool(raw.Exited), ExitCode: raw.ExitCode, Signal: raw.Signal,
		Out: charBytes(raw.OutData), Err: charBytes(raw.ErrData),
		OutTruncated: bool(raw.OutTruncated), ErrTruncated: bool(raw.ErrTruncated),
	}, nil
}

// byteChars carries bytes the way PVE's agent/exec takes them from a JSON body: one
// character U+0000..U+00FF per byte (PVE base64-encodes the characters as bytes).
func byteChars(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for _, x := range b {
		sb.WriteRune(rune(x))
	}
	return sb.String()
}

// charBytes undoes how PVE's JSON carries the agent's output: one character per byte.
func charBytes(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xFF {
			// not PVE's byte-per-character form: keep the text as it came
			return []byte(s)
		}
		out = append(out, byte(r))
	}
	return out
}

func (c *Client) vmPath(vmid int, rest string) string {
	return fmt.Sprintf("/nodes/%s/qemu/%d%s", c.node, vmid, rest)
}

func (c *Client) vmCall(method string, vmid int, rest string, params map[string]any, priv string) call {
	return call{method: method, path: c.vmPath(vmid, rest), params: params, need: fmt.Sprintf("%s on /vms/%d", priv, vmid)}
}
