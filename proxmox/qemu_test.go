package proxmox

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/proxmox/pvesim"
)

// execWait runs argv through the agent and polls until it exits.
func execWait(t *testing.T, c *Client, vmid int, input []byte, argv ...string) *ExecStatus {
	t.Helper()
	ctx := context.Background()
	pid, err := c.AgentExec(ctx, vmid, argv, input)
	if err != nil {
		t.Fatalf("exec %v: %v", argv, err)
	}
	for {
		st, err := c.AgentExecStatus(ctx, vmid, pid)
		if err != nil {
			t.Fatalf("exec-status %v: %v", argv, err)
		}
		if st.Exited {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The VM calls against the emulator over HTTPS: clone the template, start, wait for the
// agent, exec with binary stdin and output, suspend/resume, a vmstate snapshot and its
// rollback, stop, delete.
func TestVMLifecycle(t *testing.T) {
	s := startSim(t)
	c := newClient(t, s.config(t))
	ctx := context.Background()
	vms, err := c.VMs(ctx)
	if err != nil || len(vms) != 1 || int(vms[0].VMID) != pvesim.TemplateVMID || !bool(vms[0].Template) {
		t.Fatalf("VMs: %+v %v", vms, err)
	}
	if err := c.CloneVM(ctx, pvesim.TemplateVMID, 100, VMCloneOptions{Name: "ctr-a"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetVMConfig(ctx, 100, map[string]any{"memory": "256", "cores": 1, "tags": "lxcri"}); err != nil {
		t.Fatal(err)
	}
	if err := c.StartVM(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitAgent(ctx, 100, time.Minute); err != nil {
		t.Fatal(err)
	}
	st, err := c.VMStatus(ctx, 100)
	if err != nil || !st.Running() || st.Paused() || st.MaxMem != 256<<20 || !bool(st.Agent) || st.Name != "ctr-a" {
		t.Fatalf("status: %+v %v", st, err)
	}

	// every byte value goes in and comes out as it was
	in := make([]byte, 256*3)
	for i := range in {
		in[i] = byte(i)
	}
	r := execWait(t, c, 100, in, "cat")
	if !r.Exited || r.ExitCode != 0 || !bytes.Equal(r.Out, in) || len(r.Err) != 0 {
		t.Errorf("cat of every byte: exit %d, %d bytes out (equal %v), err %q", r.ExitCode, len(r.Out), bytes.Equal(r.Out, in), r.Err)
	}
	r = execWait(t, c, 100, nil, "sh", "-c", "echo out; echo err >&2; exit 3")
	if r.ExitCode != 3 || string(r.Out) != "out\n" || string(r.Err) != "err\n" {
		t.Errorf("exec: %+v", r)
	}
	if _, err := c.AgentExecStatus(ctx, 100, 4242); !errdefs.IsNotFound(err) {
		t.Errorf("status of an unknown pid: %v", err)
	}
	if _, err := c.AgentExec(ctx, 100, []string{"/no/such/program"}, nil); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "Failed to execute child process") {
		t.Errorf("exec of a missing program: %v", err)
	}

	if err := c.SuspendVM(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.VMStatus(ctx, 100); !st.Paused() {
		t.Errorf("suspended: %+v", st)
	}
	if err := c.ResumeVM(ctx, 100); err != nil {
		t.Fatal(err)
	}

	// a vmstate snapshot keeps what lives only in memory
	execWait(t, c, 100, nil, "sh", "-c", "echo kept > /dev/shm/x")
	if err := c.CreateVMSnapshot(ctx, 100, "ck1", "checkpoint", true); err != nil {
		t.Fatal(err)
	}
	snaps, err := c.VMSnapshots(ctx, 100)
	if err != nil || len(snaps) != 1 || snaps[0].Name != "ck1" || !bool(snaps[0].VMState) || snaps[0].Description != "checkpoint" {
		t.Fatalf("snapshots: %+v %v", snaps, err)
	}
	if err := c.RollbackVMSnapshot(ctx, 100, "ck1", false); err != nil {
		t.Fatal(err)
	}
	if r := execWait(t, c, 100, nil, "cat", "/dev/shm/x"); string(r.Out) != "kept\n" {
		t.Errorf("after rollback: %+v", r)
	}
	if err := c.DeleteVMSnapshot(ctx, 100, "ck1"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteVMSnapshot(ctx, 100, "ck1"); err != nil {
		t.Errorf("deleting a missing snapshot: %v", err)
	}

	if err := c.DeleteVM(ctx, 100); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "VM 100 is running - destroy failed") {
		t.Errorf("delete of a running VM: %v", err)
	}
	if err := c.StopVM(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteVM(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteVM(ctx, 100); err != nil {
		t.Errorf("deleting a deleted VM: %v", err)
	}
	if _, err := c.VMStatus(ctx, 100); !errdefs.IsNotFound(err) {
		t.Errorf("status of a deleted VM: %v", err)
	}
	noSecret(t, s, err)
}

// What the VM calls say when the VM or its agent is not as asked, without running a guest.
func TestVMErrors(t *testing.T) {
	s := startSim(t)
	c := newClient(t, s.config(t))
	ctx := context.Background()
	if err := c.CloneVM(ctx, pvesim.TemplateVMID, 101, VMCloneOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		is   func(error) bool
		text string
	}{
		{"clone onto a taken VMID", c.CloneVM(ctx, pvesim.TemplateVMID, 101, VMCloneOptions{}), errdefs.IsAlreadyExists, "already exists"},
		{"clone of a missing VM", c.CloneVM(ctx, 4242, 102, VMCloneOptions{}), errdefs.IsNotFound, "qemu-server/4242.conf' does not exist"},
		{"linked clone of a VM", c.CloneVM(ctx, 101, 102, VMCloneOptions{}), errdefs.IsFailedPrecondition, "Linked clone feature is not supported for drive 'scsi0'"},
		{"start of the template", c.StartVM(ctx, pvesim.TemplateVMID), errdefs.IsFailedPrecondition, "you can't start a vm if it's a template"},
		{"ping of a stopped VM", c.AgentPing(ctx, 101), errdefs.IsFailedPrecondition, "VM 101 is not running"},
		{"wait for the agent of a stopped VM", c.WaitAgent(ctx, 101, time.Minute), errdefs.IsFailedPrecondition, "VM 101 is not running"},
		{"suspend of a stopped VM", c.SuspendVM(ctx, 101), errdefs.IsFailedPrecondition, "VM 101 not running"},
		{"exec with too much input", func() error {
			_, err := c.AgentExec(ctx, 101, []string{"cat"}, make([]byte, MaxAgentInput+1))
			return err
		}(), errdefs.IsInvalidArgument, "at most 65536"},
		{"snapshot name", c.CreateVMSnapshot(ctx, 101, "current", "", true), errdefs.IsInvalidArgument, "snapshot name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.is(tc.err) || !strings.Contains(tc.err.Error(), tc.text) {
				t.Errorf("got %v, want one saying %q", tc.err, tc.text)
			}
			noSecret(t, s, tc.err)
		})
	}
	if n := s.count("POST", "/qemu/101/agent/exec"); n != 0 {
		t.Errorf("an exec with too much input reached PVE (%d)", n)
	}

	// an agent that is not configured fails at once, not at the deadline
	if err := c.SetVMConfig(ctx, 101, map[string]any{"agent": "0"}); err != nil {
		t.Fatal(err)
	}
	pings := s.count("POST", "/qemu/101/agent/ping")
	if err := c.WaitAgent(ctx, 101, time.Hour); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "No QEMU guest agent configured") {
		t.Errorf("agent not configured: %v", err)
	}
	if n := s.count("POST", "/qemu/101/agent/ping") - pings; n != 1 {
		t.Errorf("an unconfigured agent was asked %d times, want once", n)
	}
	// an agent that never answers is a deadline that says so
	if err := s.AddFault(pvesim.Fault{Path: `/qemu/101/agent/ping$`, Kind: pvesim.FaultError, Status: 500, Message: "QEMU guest agent is not running"}); err != nil {
		t.Fatal(err)
	}
	pings = s.count("POST", "/qemu/101/agent/ping")
	err := c.WaitAgent(ctx, 101, 300*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "QEMU guest agent is not running") || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Errorf("agent never up: %v", err)
	}
	if n := s.count("POST", "/qemu/101/agent/ping") - pings; n < 3 {
		t.Errorf("the agent was asked %d times while waiting", n)
	}
}
