//go:build linux

package conformance

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lxcri/lxcri/integration/harness"
)

// clientFocus is the part of containerd's client suite `make test` runs on lxcri's lxc
// backend: tests that pass on the runc shim and on lxc (see docs/CONFORMANCE.md), so that
// they keep passing. `make conformance` runs the whole suite on every runtime.
var clientFocus = []string{
	// lifecycle, IO and exec
	"TestContainerStart", "TestContainerOutput", "TestContainerExec", "TestContainerLargeExecArgs",
	"TestContainerPids", "TestContainerCloseIO", "TestContainerAttach", "TestContainerAttachProcess",
	"TestContainerPTY", "TestContainerNoSTDIN", "TestTaskResize", "TestTaskSpec", "TestContainerHook",
	"TestShortRunningTaskPid", "TestContainerExecNoBinaryExists", "TestContainerLoadUnexistingProcess",
	// signals, wait and delete
	"TestContainerKill", "TestContainerKillAll", "TestContainerKillInitPidHost",
	"TestContainerKillInitKillsChildWhenNotHostPid", "TestContainerWait", "TestWaitStoppedTask",
	"TestWaitStoppedProcess", "TestContainerExitedAtSet", "TestDeleteRunningContainer",
	"TestDeleteContainerExecCreated", "TestProcessForceDelete", "TestTaskForceDelete",
	// metrics, shim and daemon restarts, checkpoints on ZFS
	"TestContainerMetrics", "TestShimDoesNotLeakPipes", "TestShimDoesNotLeakSockets",
	"TestDaemonRestartWithRunningShim", "TestDaemonReconnectsToShimIOPipesOnRestart",
	"TestCheckpointLeaveRunning", "TestCheckpointOnPauseStatus",
}

// TestClientFocus runs clientFocus of containerd's client suite against lxcri's lxc backend
// (contrib/scripts/setup-conformance.sh builds the suite) and wants every test to pass.
func TestClientFocus(t *testing.T) {
	rt, err := RuntimeByKey(LXC)
	if err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(clientFocus))
	for i, n := range clientFocus {
		quoted[i] = regexp.QuoteMeta(n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	res, err := Run(ctx, t, Options{
		Suite: SuiteClient, Runtime: rt, Focus: "^(" + strings.Join(quoted, "|") + ")$",
		Timeout: 5 * time.Minute, OutDir: t.TempDir(), ToolsDir: harness.ToolsDir(t),
		Progress: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := index(res.Tests)
	for _, n := range clientFocus {
		tr, ok := got[n]
		switch {
		case !ok:
			t.Errorf("%s did not run", n)
		case tr.Status != Passed:
			t.Errorf("%s %s on lxc: %s", n, tr.Status, tr.Message)
		}
	}
	if len(res.Tests) != len(clientFocus) {
		t.Errorf("ran %d tests, want the %d of the focus set", len(res.Tests), len(clientFocus))
	}
	t.Logf("%d tests of containerd's client suite on lxc in %s", len(res.Tests), res.Duration)
}
