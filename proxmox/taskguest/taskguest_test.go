package taskguest

import (
	"os"
	"path/filepath"
	"testing"
)

// The tags, descriptions and record files are what guests and bundles made by earlier
// versions hold: these pin them to the letter.

func TestIDTag(t *testing.T) {
	for _, tc := range []struct{ ns, id, want string }{
		{"test", "c1", "lxcri-9bebf3230853ba83ee33"},
		{"default", "my-ctr", "lxcri-7684324a55efa050477b"},
		{"k8s.io", "", "lxcri-781250361d1075dbf2be"},
	} {
		if got := IDTag(tc.ns, tc.id); got != tc.want {
			t.Errorf("IDTag(%q, %q) = %q, want %q", tc.ns, tc.id, got, tc.want)
		}
	}
	// The NUL keeps namespace and id apart: "a"+"bc" is not "ab"+"c".
	if IDTag("a", "bc") == IDTag("ab", "c") {
		t.Error("IDTag does not separate namespace from id")
	}
}

var (
	ct = Kind{Backend: "proxmox-lxc", Noun: "CT", RecordFile: "lxcri-proxmox.json"}
	vm = Kind{Backend: "proxmox-vm", Noun: "VM", RecordFile: "lxcri-proxmox-vm.json"}
)

func TestDescription(t *testing.T) {
	for _, tc := range []struct {
		kind Kind
		want string
	}{
		{ct, "containerd task c1 in namespace test, run by lxcri (proxmox-lxc); deleting the task destroys this CT"},
		{vm, "containerd task c1 in namespace test, run by lxcri (proxmox-vm); deleting the task destroys this VM"},
	} {
		if got := tc.kind.Description("test", "c1"); got != tc.want {
			t.Errorf("%s: Description = %q, want %q", tc.kind.Noun, got, tc.want)
		}
	}
}

func TestRecord(t *testing.T) {
	for _, kind := range []Kind{ct, vm} {
		t.Run(kind.Noun, func(t *testing.T) {
			bundle := t.TempDir()
			if _, err := kind.ReadRecord(bundle); !os.IsNotExist(err) {
				t.Fatalf("ReadRecord of a bundle without one = %v, want a not-exist error", err)
			}
			r := Record{Node: "pve1", VMID: 101, Tag: "lxcri-9bebf3230853ba83ee33"}
			if err := kind.WriteRecord(bundle, r); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(bundle, kind.RecordFile))
			if want := `{"node":"pve1","vmid":101,"tag":"lxcri-9bebf3230853ba83ee33"}`; err != nil || string(b) != want {
				t.Fatalf("%s = %q, %v; want %q", kind.RecordFile, b, err, want)
			}
			if fi, err := os.Stat(filepath.Join(bundle, kind.RecordFile)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("record mode: %v, %v; want 0600", fi, err)
			}
			got, err := kind.ReadRecord(bundle)
			if err != nil || *got != r {
				t.Fatalf("ReadRecord = %+v, %v; want %+v", got, err, r)
			}
			if entries, _ := os.ReadDir(bundle); len(entries) != 1 {
				t.Fatalf("bundle holds %d files after WriteRecord, want only the record", len(entries))
			}
			kind.RemoveRecord(bundle)
			if _, err := kind.ReadRecord(bundle); !os.IsNotExist(err) {
				t.Fatalf("ReadRecord after RemoveRecord = %v, want a not-exist error", err)
			}
			if err := os.WriteFile(filepath.Join(bundle, kind.RecordFile), []byte("{"), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := kind.ReadRecord(bundle); err == nil {
				t.Fatal("ReadRecord of a torn record succeeded")
			}
		})
	}
}
