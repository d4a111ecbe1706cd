package proxmoxvm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/proxmox"
)

// Every VM the backend makes carries two PVE tags: ownerTag, so an operator sees which VMs
// are lxcri's, and idTag(namespace, id), by which the VM of a containerd task is found from
// the task's name alone (after a shim crash). The description holds the name in full.
const ownerTag = "lxcri"

func idTag(namespace, id string) string {
	sum := sha256.Sum256([]byte(namespace + "\x00" + id))
	return "lxcri-" + hex.EncodeToString(sum[:10])
}

func description(namespace, id string) string {
	return fmt.Sprintf("containerd task %s in namespace %s, run by lxcri (proxmox-vm); deleting the task destroys this VM", id, namespace)
}

// recordFile, in the bundle, persists the task's VMID: written before the VM is cloned, so
// a crash at any point leaves the VMID where `shim delete` looks first.
const recordFile = "lxcri-proxmox-vm.json"

type record struct {
	Node string `json:"node"`
	VMID int    `json:"vmid"`
	Tag  string `json:"tag"`
}

func writeRecord(bundle string, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := filepath.Join(bundle, recordFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(bundle, recordFile))
}

func readRecord(bundle string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(bundle, recordFile))
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", recordFile, err)
	}
	return &r, nil
}

func removeRecord(bundle string) { os.Remove(filepath.Join(bundle, recordFile)) }

// findVMs returns the VMIDs of the node's VMs tagged tag.
func findVMs(ctx context.Context, api *proxmox.Client, tag string) ([]int, error) {
	vms, err := api.VMs(ctx)
	if err != nil {
		return nil, err
	}
	var ids []int
	for _, v := range vms {
		if slices.Contains(v.TagList(), tag) {
			ids = append(ids, int(v.VMID))
		}
	}
	return ids, nil
}

// hasTag reads whether VM vmid carries tag; a missing VM does not.
func hasTag(ctx context.Context, api *proxmox.Client, vmid int, tag string) (bool, error) {
	cfg, err := api.VMConfig(ctx, vmid)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	tags, _ := cfg["tags"].(string)
	v := proxmox.VM{Tags: tags}
	return slices.Contains(v.TagList(), tag), nil
}
