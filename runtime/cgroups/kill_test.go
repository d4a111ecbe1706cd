package cgroups

import (
	"context"
	"testing"
	"time"
)

// TestKillAllWait: every process of the cgroup has ended when KillAllWait returns, and an
// empty cgroup is no error.
func TestKillAllWait(t *testing.T) {
	f := newV1Fixture(t, "sleep", true)
	second := startChild(t, "sleep")
	if err := f.raw.AddProc(uint64(second.pid())); err != nil {
		t.Fatal(err)
	}
	second.release(t, true)
	pids := []int{f.child.pid(), second.pid()}
	if live := running(pids); len(live) != 2 {
		t.Fatalf("running(%v) = %v before the kill", pids, live)
	}
	if err := KillAllWait(context.Background(), f.cg, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if live := running(pids); len(live) != 0 {
		t.Errorf("processes %v still run after KillAllWait", live)
	}
	if err := KillAllWait(context.Background(), f.cg, time.Second); err != nil {
		t.Errorf("KillAllWait of an empty cgroup: %v", err)
	}
}
