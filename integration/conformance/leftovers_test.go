//go:build linux

package conformance

import (
	"os/exec"
	"slices"
	"testing"
)

func TestProcessesWith(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 30", "sh", "-address", "/run/conformance-test.sock")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if got := processesWith("-address", "/run/conformance-test.sock"); !slices.Contains(got, cmd.Process.Pid) {
		t.Errorf("processesWith = %v, want it to hold %d", got, cmd.Process.Pid)
	}
	if got := processesWith("-address", "/run/conformance-test.sock.other"); slices.Contains(got, cmd.Process.Pid) {
		t.Errorf("processesWith matched another value: %v", got)
	}
}
