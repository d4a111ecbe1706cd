package proxmoxvm

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/proxmox"
	"github.com/lxcri/lxcri/proxmox/taskguest"
)

// CheckpointFile is the file, in a checkpoint's directory (and so in the checkpoint image's
// layer), that names the VM and snapshot a checkpoint is.
const CheckpointFile = "proxmox-vm.json"

// keptTag marks a VM kept, stopped, after its task was deleted because a checkpoint of it
// may still be restored. Such a VM belongs to no task: only the checkpoint images that
// name it say whether it is still needed.
const keptTag = "lxcri-checkpoint"

// PruneOptions says which kept VMs Prune spares.
type PruneOptions struct {
	// MinAge spares VMs with a snapshot younger than this: a checkpoint being taken is in
	// no checkpoint image yet.
	MinAge time.Duration
	DryRun bool
}

// PruneResult names the kept VMs by VMID.
type PruneResult struct {
	Freed []string `json:"freed"` // destroyed (or, dry, would be)
	Live  []string `json:"live"`  // named by a checkpoint
	Young []string `json:"young"` // with a snapshot younger than MinAge
}

// Prune destroys the VMs kept for a checkpoint (tagged lxcri and lxcri-checkpoint) that no
// checkpoint in checkpoints (the contents of CheckpointFile in every checkpoint image)
// names. VMs of tasks (which carry their task's tag instead) are never touched: removing a
// task's VM is the task's delete. A checkpoint file that cannot be read spares every VM
// rather than guess.
func Prune(ctx context.Context, api *proxmox.Client, checkpoints [][]byte, opts PruneOptions) (*PruneResult, error) {
	named := map[int]bool{}
	for _, b := range checkpoints {
		var ref checkpointRef
		if err := json.Unmarshal(b, &ref); err != nil || ref.VMID <= 0 {
			return nil, fmt.Errorf("%s: a checkpoint's %s is not valid (%v): no VM is pruned: %w", Name, CheckpointFile, err, errdefs.ErrFailedPrecondition)
		}
		if ref.Node == api.Node() {
			named[ref.VMID] = true
		}
	}
	vms, err := api.VMs(ctx)
	if err != nil {
		return nil, err
	}
	res := &PruneResult{}
	for _, v := range vms {
		tags := v.TagList()
		if bool(v.Template) || !slices.Contains(tags, taskguest.OwnerTag) || !slices.Contains(tags, keptTag) {
			continue
		}
		id := int(v.VMID)
		name := strconv.Itoa(id)
		if named[id] {
			res.Live = append(res.Live, name)
			continue
		}
		young, err := hasYoungSnapshot(ctx, api, id, opts.MinAge)
		if err != nil {
			return res, err
		}
		if young {
			res.Young = append(res.Young, name)
			continue
		}
		if !opts.DryRun {
			if err := api.StopVM(ctx, id); err != nil && !errdefs.IsNotFound(err) {
				return res, err
			}
			if err := api.DeleteVM(ctx, id); err != nil && !errdefs.IsNotFound(err) {
				return res, err
			}
		}
		res.Freed = append(res.Freed, name)
	}
	return res, nil
}

func hasYoungSnapshot(ctx context.Context, api *proxmox.Client, vmid int, minAge time.Duration) (bool, error) {
	if minAge <= 0 {
		return false, nil
	}
	snaps, err := api.VMSnapshots(ctx, vmid)
	if err != nil {
		return false, err
	}
	for _, s := range snaps {
		if time.Since(time.Unix(s.SnapTime, 0)) < minAge {
			return true, nil
		}
	}
	return false, nil
}
