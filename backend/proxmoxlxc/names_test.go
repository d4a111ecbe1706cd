package proxmoxlxc

import (
	"testing"

	"github.com/lxcri/lxcri/proxmox/taskguest"
)

// The CTs and bundles of earlier versions hold these names: changing them loses those CTs.
func TestKind(t *testing.T) {
	if want := (taskguest.Kind{Backend: "proxmox-lxc", Noun: "CT", RecordFile: "lxcri-proxmox.json"}); kind != want {
		t.Fatalf("kind = %+v, want %+v", kind, want)
	}
}
