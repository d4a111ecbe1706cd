package proxmoxlxc

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/lxcri/lxcri/proxmox"
	"github.com/lxcri/lxcri/proxmox/taskguest"
	"github.com/lxcri/lxcri/runtime"
)

// readCheckpoint reads the descriptor a Checkpoint wrote into dir.
func readCheckpoint(dir string) (*Checkpoint, error) {
	b, err := os.ReadFile(filepath.Join(dir, checkpointFile))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("checkpoint %s holds no %s: it was not made by %s: %w", dir, checkpointFile, Name, errdefs.ErrInvalidArgument)
		}
		return nil, err
	}
	var d Checkpoint
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %s: %v: %w", dir, checkpointFile, err, errdefs.ErrInvalidArgument)
	}
	if d.VMID <= 0 || proxmox.ValidSnapshotName(d.Snapshot) != nil {
		return nil, fmt.Errorf("checkpoint %s: %s names no CT snapshot: %w", dir, checkpointFile, errdefs.ErrInvalidArgument)
	}
	return &d, nil
}

// restore makes the task's CT a full clone of the checkpoint's snapshot, tagged for this
// task. The snapshot lives on the checkpointed task's CT: once that task is deleted (and its
// CT destroyed), its checkpoints cannot be restored, which is said in the error.
func (b *backend) restore(ctx context.Context, req *runtime.CreateRequest, ct *CTSpec, tag string) (_ runtime.Container, retErr error) {
	d, err := readCheckpoint(req.Checkpoint)
	if err != nil {
		return nil, err
	}
	if d.Node != b.api.Node() {
		return nil, fmt.Errorf("checkpoint %s is a snapshot on node %s, not on %s: %w", req.Checkpoint, d.Node, b.api.Node(), errdefs.ErrFailedPrecondition)
	}
	ok, err := hasTag(ctx, b.api, d.VMID, d.Tag)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("checkpoint %s: CT %d of the checkpointed task is gone, and its snapshot %s with it: %w", req.Checkpoint, d.VMID, d.Snapshot, errdefs.ErrNotFound)
	}
	opts := CloneOptionsFor(req, ct, d.Snapshot)
	vmid, err := b.createCT(ctx, req.Bundle, tag, func(vmid int) error { return b.api.CloneCT(ctx, d.VMID, vmid, opts) })
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			if err := b.api.DeleteCT(context.WithoutCancel(ctx), vmid, true); err != nil {
				log.G(ctx).WithError(err).WithField("vmid", vmid).Error("proxmox-lxc: remove the CT of a failed restore")
			} else {
				kind.RemoveRecord(req.Bundle)
			}
		}
	}()
	// The clone carries the source's tags, description and resources: make it this task's.
	set := map[string]any{"tags": taskguest.OwnerTag + ";" + tag, "description": kind.Description(req.Namespace, req.ID)}
	for k, v := range ct.Options {
		set[k] = v
	}
	if err := b.api.SetCTConfig(ctx, vmid, set); err != nil {
		return nil, err
	}
	log.G(ctx).WithField("id", req.ID).Infof("proxmox-lxc: task %s restored as CT %d, a clone of snapshot %s of CT %d; its process starts afresh (a CT snapshot holds no process memory)", req.ID, vmid, d.Snapshot, d.VMID)
	return newContainer(b, req, vmid, ct), nil
}

// CloneOptionsFor is the clone of a checkpoint's snapshot for a task.
func CloneOptionsFor(req *runtime.CreateRequest, ct *CTSpec, snapshot string) proxmox.CloneOptions {
	o := proxmox.CloneOptions{Snapshot: snapshot, Description: kind.Description(req.Namespace, req.ID)}
	if h, ok := ct.Options["hostname"].(string); ok {
		o.Hostname = h
	}
	return o
}
