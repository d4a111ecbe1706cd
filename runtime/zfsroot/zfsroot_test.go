//go:build linux

package zfsroot

import (
	"context"
	"strings"
	"testing"

	"github.com/lxcri/lxcri/integration/zfstest"
	"github.com/lxcri/lxcri/runtime"
)

// TestMeasureCheckpoint: the measurement runs on a real pool and leaves nothing behind.
func TestMeasureCheckpoint(t *testing.T) {
	pool, _ := zfstest.Pool(t)
	cfg := &runtime.ZFSConfig{Dataset: pool + "/lxcri"}
	ms, err := MeasureCheckpoint(context.Background(), cfg, []int64{0, 1 << 20, 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		t.Logf("size %9d: checkpoint %v, restore %v, send %v (%d bytes)", m.Size, m.Checkpoint, m.Restore, m.Send, m.StreamBytes)
		if m.Checkpoint <= 0 || m.Restore <= 0 || m.StreamBytes < m.Size {
			t.Errorf("implausible measurement %+v", m)
		}
	}
	for _, d := range zfstest.Datasets(t, pool) {
		if d != pool && d != pool+"/lxcri" {
			t.Errorf("left behind: %s", d)
		}
	}
}

func TestReadDescriptor(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadDescriptor(dir); err == nil || !strings.Contains(err.Error(), "has no "+DescriptorFile) {
		t.Errorf("missing descriptor: %v", err)
	}
}
