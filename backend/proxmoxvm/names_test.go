package proxmoxvm

import (
	"testing"

	"github.com/lxcri/lxcri/proxmox/taskguest"
)

// The VMs and bundles of earlier versions hold these names: changing them loses those VMs.
func TestKind(t *testing.T) {
	if want := (taskguest.Kind{Backend: "proxmox-vm", Noun: "VM", RecordFile: "lxcri-proxmox-vm.json"}); kind != want {
		t.Fatalf("kind = %+v, want %+v", kind, want)
	}
}
