package proxmoxvm

import (
	"context"

	"github.com/lxcri/lxcri/proxmox"
	"github.com/lxcri/lxcri/proxmox/taskguest"
)

// kind names the backend's VMs; its record file name is the one bundles already hold.
var kind = taskguest.Kind{Backend: "proxmox-vm", Noun: "VM", RecordFile: "lxcri-proxmox-vm.json"}

// findVMs returns the VMIDs of the node's VMs tagged tag.
func findVMs(ctx context.Context, api *proxmox.Client, tag string) ([]int, error) {
	return taskguest.Find(ctx, api.VMs, tag, func(v *proxmox.VM) (int, []string) { return int(v.VMID), v.TagList() })
}

// hasTag reads whether VM vmid carries tag; a missing VM does not.
func hasTag(ctx context.Context, api *proxmox.Client, vmid int, tag string) (bool, error) {
	return taskguest.HasTag(ctx, api.VMConfig, vmid, tag)
}
