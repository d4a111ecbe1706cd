package proxmoxlxc

import (
	"context"

	"github.com/lxcri/lxcri/proxmox"
	"github.com/lxcri/lxcri/proxmox/taskguest"
)

// kind names the backend's CTs; its record file name is the one bundles already hold.
var kind = taskguest.Kind{Backend: "proxmox-lxc", Noun: "CT", RecordFile: "lxcri-proxmox.json"}

// findCT returns the VMIDs of the node's CTs tagged tag.
func findCT(ctx context.Context, api *proxmox.Client, tag string) ([]int, error) {
	return taskguest.Find(ctx, api.CTs, tag, func(ct *proxmox.CT) (int, []string) { return int(ct.VMID), ct.TagList() })
}

// hasTag reads whether CT vmid carries tag; a missing CT does not.
func hasTag(ctx context.Context, api *proxmox.Client, vmid int, tag string) (bool, error) {
	return taskguest.HasTag(ctx, api.CTConfig, vmid, tag)
}
