// Package taskguest holds how the Proxmox backends name the PVE guest (CT or VM) of a
// containerd task, so that the guest is found again from the task alone: its tags and
// description, the record of its VMID in the task's bundle, and the lookups by tag.
package taskguest

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

// Every guest a backend makes carries two PVE tags: OwnerTag, so an operator sees which
// guests are lxcri's, and IDTag(namespace, id), by which the guest of a containerd task is
// found from the task's name alone (after a shim crash, or a reboot that lost /run). PVE
// tags are lower-case and short, so the name is hashed; the description holds it in full.
// Both are what guests made by earlier versions carry: changing them loses those guests.
const OwnerTag = "lxcri"

// IDTag is the tag of the guest of task id in namespace.
func IDTag(namespace, id string) string {
	sum := sha256.Sum256([]byte(namespace + "\x00" + id))
	return "lxcri-" + hex.EncodeToString(sum[:10])
}

// Kind is what differs between the backends' guests.
type Kind struct {
	Backend    string // the backend's name, as the description shows it
	Noun       string // what PVE calls the guest: "CT" or "VM"
	RecordFile string // the record's file name in the bundle
}

// Description is the guest's PVE description, naming its task for an operator.
func (k Kind) Description(namespace, id string) string {
	return fmt.Sprintf("containerd task %s in namespace %s, run by lxcri (%s); deleting the task destroys this %s", id, namespace, k.Backend, k.Noun)
}

// Record, in the bundle, persists the task's VMID: written before the guest is made, so a
// crash at any point leaves the VMID where `shim delete` looks first.
type Record struct {
	Node string `json:"node"`
	VMID int    `json:"vmid"`
	Tag  string `json:"tag"`
}

// WriteRecord replaces the bundle's record atomically, so a crash leaves the old or the new.
func (k Kind) WriteRecord(bundle string, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := filepath.Join(bundle, k.RecordFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(bundle, k.RecordFile))
}

// ReadRecord reads the bundle's record; a missing one is an os.IsNotExist error.
func (k Kind) ReadRecord(bundle string) (*Record, error) {
	b, err := os.ReadFile(filepath.Join(bundle, k.RecordFile))
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", k.RecordFile, err)
	}
	return &r, nil
}

// RemoveRecord removes the bundle's record, if any.
func (k Kind) RemoveRecord(bundle string) { os.Remove(filepath.Join(bundle, k.RecordFile)) }

// Find returns the VMIDs of the guests list returns that carry tag; read gives a listed
// guest's VMID and tags (the CT and VM lists differ in type).
func Find[G any](ctx context.Context, list func(context.Context) ([]G, error), tag string, read func(*G) (int, []string)) ([]int, error) {
	guests, err := list(ctx)
	if err != nil {
		return nil, err
	}
	var ids []int
	for i := range guests {
		if vmid, tags := read(&guests[i]); slices.Contains(tags, tag) {
			ids = append(ids, vmid)
		}
	}
	return ids, nil
}

// HasTag reads, through config (the client's CTConfig or VMConfig), whether guest vmid
// carries tag; a missing guest does not.
func HasTag(ctx context.Context, config func(context.Context, int) (map[string]any, error), vmid int, tag string) (bool, error) {
	cfg, err := config(ctx, vmid)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	tags, _ := cfg["tags"].(string)
	ct := proxmox.CT{Tags: tags}
	return slices.Contains(ct.TagList(), tag), nil
}
