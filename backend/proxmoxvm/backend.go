// Package proxmoxvm is the proxmox-vm backend: each containerd task runs in a QEMU VM of
// the Proxmox VE node, cloned from a template whose guest runs the QEMU guest agent, made,
// sized, started, suspended, snapshotted and destroyed through the PVE API. The image's
// root filesystem is copied into the guest through the agent, and the task's processes
// run there under lxcri-vm-launcher, a static binary the backend places in the guest,
// which gives them the spec's args, env, cwd and user (the agent's exec has none of
// these) and keeps their output for the backend to fetch as it grows. See README.md.
package proxmoxvm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/lxcri/lxcri/proxmox"
	"github.com/lxcri/lxcri/proxmox/taskguest"
	"github.com/lxcri/lxcri/runtime"
)

// Name is the backend's configuration name.
const Name = "proxmox-vm"

// LauncherBinary is the launcher's file name, looked up beside the shim binary.
const LauncherBinary = "lxcri-vm-launcher"

const maxCloneAttempts = 5

type settings struct {
	template     int
	full         bool
	memory       int
	cores        int
	agentTimeout time.Duration
}

// parseSettings checks the [proxmox-vm] section.
func parseSettings(c runtime.ProxmoxVMConfig) (settings, error) {
	s := settings{template: c.TemplateVMID, full: c.FullClone, memory: c.Memory, cores: c.Cores, agentTimeout: time.Minute}
	if c.TemplateVMID < 100 || c.TemplateVMID > 999999999 {
		return s, runtime.FieldErrorf("proxmox-vm.template_vmid", "%d: want the VMID (100-999999999) of a VM template with the QEMU guest agent", c.TemplateVMID)
	}
	if c.Memory != 0 && c.Memory < 16 {
		return s, runtime.FieldErrorf("proxmox-vm.memory", "%d MiB: want at least 16, or 0 for the template's", c.Memory)
	}
	if c.Cores < 0 || c.Cores > 128 {
		return s, runtime.FieldErrorf("proxmox-vm.cores", "%d: want 1-128, or 0 for the template's", c.Cores)
	}
	if c.AgentTimeout != "" {
		d, err := time.ParseDuration(c.AgentTimeout)
		if err != nil || d <= 0 {
			return s, runtime.FieldErrorf("proxmox-vm.agent_timeout", "%q: want a positive Go duration such as 1m", c.AgentTimeout)
		}
		s.agentTimeout = d
	}
	return s, nil
}

type backend struct {
	api      *proxmox.Client
	cfg      settings
	launcher []byte
}

// New makes the backend from the [proxmox] and [proxmox-vm] sections of cfg.
func New(ctx context.Context, cfg *runtime.Config) (runtime.Backend, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return newBackend(ctx, cfg, filepath.Join(filepath.Dir(exe), LauncherBinary))
}

func newBackend(ctx context.Context, cfg *runtime.Config, launcher string) (*backend, error) {
	s, err := parseSettings(cfg.ProxmoxVM)
	if err != nil {
		return nil, err
	}
	api, err := proxmox.New(ctx, &cfg.Proxmox)
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(launcher)
	if err != nil {
		return nil, fmt.Errorf("%s: the guest launcher %s is missing (install it beside the shim): %w", Name, launcher, errdefs.ErrFailedPrecondition)
	}
	return &backend{api: api, cfg: s, launcher: bin}, nil
}

func (b *backend) Name() string { return Name }

// Needs: the shim mounts the image's root here, and the backend copies it into the guest;
// pids are the guest's; checkpoints are VM snapshots with RAM.
func (b *backend) Needs() runtime.Needs {
	return runtime.Needs{HostRootfs: true, HostPids: false, OwnsCheckpoints: true}
}

// checkTemplate refuses a template that does not exist or has no agent enabled, before
// anything is cloned.
func (b *backend) checkTemplate(ctx context.Context) error {
	cfg, err := b.api.VMConfig(ctx, b.cfg.template)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("%s: [proxmox-vm] template_vmid %d: no such VM on node %s: %w", Name, b.cfg.template, b.api.Node(), errdefs.ErrFailedPrecondition)
		}
		return err
	}
	if agent := fmt.Sprint(cfg["agent"]); agent != "1" && !strings.HasPrefix(agent, "1,") && !strings.Contains(","+agent+",", ",enabled=1,") {
		return fmt.Errorf("%s: [proxmox-vm] template_vmid %d has no QEMU guest agent enabled (set agent: 1 and install qemu-guest-agent in its guest): %w", Name, b.cfg.template, errdefs.ErrFailedPrecondition)
	}
	return nil
}

func (b *backend) Create(ctx context.Context, req *runtime.CreateRequest) (_ runtime.Container, retErr error) {
	vs, err := Translate(req.Spec)
	if err != nil {
		return nil, err
	}
	tag := taskguest.IDTag(req.Namespace, req.ID)
	if ids, err := findVMs(ctx, b.api, tag); err != nil {
		return nil, err
	} else if len(ids) > 0 {
		return nil, fmt.Errorf("%s: VM %d already carries the tag %s of task %s/%s (left by a shim that died? `ctr task delete` removes it): %w", Name, ids[0], tag, req.Namespace, req.ID, errdefs.ErrAlreadyExists)
	}
	if req.Checkpoint != "" {
		return b.restore(ctx, req, vs, tag)
	}
	if req.Rootfs == "" {
		return nil, fmt.Errorf("%s: no root filesystem to copy into the VM: %w", Name, errdefs.ErrInvalidArgument)
	}
	if err := b.checkTemplate(ctx); err != nil {
		return nil, err
	}
	vmid, err := b.clone(ctx, req.Bundle, tag)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			b.destroy(context.WithoutCancel(ctx), vmid)
			kind.RemoveRecord(req.Bundle)
		}
	}()
	opts := map[string]any{"tags": taskguest.OwnerTag + ";" + tag, "description": kind.Description(req.Namespace, req.ID)}
	if b.cfg.memory > 0 {
		opts["memory"] = b.cfg.memory
	}
	if b.cfg.cores > 0 {
		opts["cores"] = b.cfg.cores
	}
	for k, v := range vs.Options {
		opts[k] = v
	}
	if err := b.api.SetVMConfig(ctx, vmid, opts); err != nil {
		return nil, err
	}
	if err := b.api.StartVM(ctx, vmid); err != nil {
		return nil, err
	}
	if err := b.api.WaitAgent(ctx, vmid, b.cfg.agentTimeout); err != nil {
		return nil, fmt.Errorf("%s: VM %d (removed again): %w", Name, vmid, err)
	}
	g := &guest{api: b.api, vmid: vmid}
	if err := g.placeLauncher(ctx, b.launcher); err != nil {
		return nil, err
	}
	if err := g.uploadRootfs(ctx, req.Rootfs, req.StateDir); err != nil {
		return nil, err
	}
	return b.newContainer(req, vmid, tag, vs.Process), nil
}

func (b *backend) newContainer(req *runtime.CreateRequest, vmid int, tag string, ps ProcessSpec) *container {
	c := &container{b: b, id: req.ID, ns: req.Namespace, bundle: req.Bundle, vmid: vmid, tag: tag, execs: map[string]*process{}}
	c.init = &process{Proc: runtime.NewProc(req.ID, req.IO), c: c, spec: ps, dir: guestProcs + "/init", init: true}
	return c
}

// clone makes the task's VM from the template under a VMID PVE offers, recorded in the
// bundle first; a VMID another creator took meanwhile is asked for again.
func (b *backend) clone(ctx context.Context, bundle, tag string) (int, error) {
	var last error
	for i := 0; i < maxCloneAttempts; i++ {
		vmid, err := b.api.NextID(ctx)
		if err != nil {
			return 0, err
		}
		if err := kind.WriteRecord(bundle, taskguest.Record{Node: b.api.Node(), VMID: vmid, Tag: tag}); err != nil {
			return 0, err
		}
		err = b.api.CloneVM(ctx, b.cfg.template, vmid, proxmox.VMCloneOptions{Full: b.cfg.full})
		if err == nil {
			return vmid, nil
		}
		if !errdefs.IsAlreadyExists(err) {
			// a clone task that failed may have left the VM half made
			b.destroy(context.WithoutCancel(ctx), vmid)
			kind.RemoveRecord(bundle)
			return 0, err
		}
		last = err
	}
	kind.RemoveRecord(bundle)
	return 0, last
}

// destroy stops and removes a VM, logging what fails (cleanup paths).
func (b *backend) destroy(ctx context.Context, vmid int) {
	if err := b.api.StopVM(ctx, vmid); err != nil && !errdefs.IsNotFound(err) {
		log.G(ctx).WithError(err).WithField("vmid", vmid).Warn("proxmox-vm: stop")
	}
	if err := b.api.DeleteVM(ctx, vmid); err != nil {
		log.G(ctx).WithError(err).WithField("vmid", vmid).Error("proxmox-vm: remove the VM of a failed create")
	}
}

// restore rolls the VM a checkpoint names back to its snapshot: the guest resumes with
// its RAM, and the init goes on as the restored task's.
func (b *backend) restore(ctx context.Context, req *runtime.CreateRequest, vs *VMSpec, tag string) (runtime.Container, error) {
	raw, err := os.ReadFile(filepath.Join(req.Checkpoint, CheckpointFile))
	if err != nil {
		return nil, fmt.Errorf("%s: checkpoint %s: %w", Name, req.Checkpoint, errdefs.ErrNotFound)
	}
	var ref checkpointRef
	if err := json.Unmarshal(raw, &ref); err != nil {
		return nil, fmt.Errorf("%s: checkpoint %s: %v: %w", Name, req.Checkpoint, err, errdefs.ErrInvalidArgument)
	}
	if ref.Node != b.api.Node() {
		return nil, fmt.Errorf("%s: the checkpoint is of node %s, this is %s: %w", Name, ref.Node, b.api.Node(), errdefs.ErrFailedPrecondition)
	}
	if err := kind.WriteRecord(req.Bundle, taskguest.Record{Node: ref.Node, VMID: ref.VMID, Tag: tag}); err != nil {
		return nil, err
	}
	if err := b.api.StopVM(ctx, ref.VMID); err != nil {
		return nil, err
	}
	if err := b.api.RollbackVMSnapshot(ctx, ref.VMID, ref.Snapshot, false); err != nil {
		return nil, err
	}
	if err := b.api.SetVMConfig(ctx, ref.VMID, map[string]any{"tags": taskguest.OwnerTag + ";" + tag, "description": kind.Description(req.Namespace, req.ID)}); err != nil {
		return nil, err
	}
	if err := b.api.WaitAgent(ctx, ref.VMID, b.cfg.agentTimeout); err != nil {
		return nil, err
	}
	c := b.newContainer(req, ref.VMID, tag, vs.Process)
	c.checkpoints = []string{ref.Snapshot}
	c.init.outOff, c.init.errOff = ref.OutOff, ref.ErrOff
	c.restored = true
	return c, nil
}

// Cleanup removes the VM of a task whose shim died: the one the bundle records (if it
// carries the task's tag) and any other with the tag.
func (b *backend) Cleanup(ctx context.Context, req *runtime.CleanupRequest) error {
	tag := taskguest.IDTag(req.Namespace, req.ID)
	var errs []error
	if r, err := kind.ReadRecord(req.Bundle); err == nil && r.VMID > 0 {
		if ok, err := hasTag(ctx, b.api, r.VMID, tag); err != nil {
			errs = append(errs, err)
		} else if ok {
			b.destroy(ctx, r.VMID)
		}
	}
	ids, err := findVMs(ctx, b.api, tag)
	if err != nil {
		errs = append(errs, err)
	}
	for _, id := range ids {
		if err := b.api.StopVM(ctx, id); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
		if err := b.api.DeleteVM(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		kind.RemoveRecord(req.Bundle)
	}
	return errors.Join(errs...)
}
