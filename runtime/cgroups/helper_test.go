package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a test process instead of running tests.
const helperEnv = "LXCRI_CGROUPS_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode))
	}
	os.Exit(m.Run())
}

// helperMain waits for one line on stdin (so the test can move it into a cgroup first),
// then allocates: "sleep" 1 MiB, "alloc" 64 MiB. It says "ready" on stdout and sleeps until
// killed.
func helperMain(mode string) int {
	var b [1]byte
	if _, err := os.Stdin.Read(b[:]); err != nil {
		return 2
	}
	size := 1 << 20
	if mode == "alloc" {
		size = 64 << 20
	}
	mem := make([]byte, size)
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 1
	}
	os.Stdout.WriteString("ready\n")
	time.Sleep(time.Hour)
	runtime.KeepAlive(mem)
	return 0
}

// child is a helper process the test owns.
type child struct {
	cmd   *exec.Cmd
	gate  io.WriteCloser
	ready *bufio.Reader
	done  chan struct{}
	state *os.ProcessState
}

// startChild starts the helper and returns it waiting at its gate; place it in a cgroup,
// then call release.
func startChild(t *testing.T, mode string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	gate, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, gate: gate, ready: bufio.NewReader(out), done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		c.state = cmd.ProcessState
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
	})
	return c
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// release lets the helper allocate and sleep; with wait, it returns once the helper has
// allocated.
func (c *child) release(t *testing.T, wait bool) {
	t.Helper()
	if _, err := c.gate.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	if !wait {
		return
	}
	if line, err := c.ready.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("helper pid %d: %q, %v", c.pid(), line, err)
	}
}

// waitSignaled waits for the helper to die of sig.
func (c *child) waitSignaled(t *testing.T, sig syscall.Signal) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("pid %d still running", c.pid())
	}
	ws, ok := c.state.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != sig {
		t.Fatalf("pid %d ended with %v, want signal %v", c.pid(), c.state, sig)
	}
}

// alive tells whether the helper is still running.
func (c *child) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

var testSeq atomic.Int64

// testName is a cgroup name unique to this test run, easy to spot if left behind.
func testName() string {
	return fmt.Sprintf("/lxcri-cgroups-test-%d-%d", os.Getpid(), testSeq.Add(1))
}

// readTrim reads a small control file.
func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return string(b)
}

// deadPid returns the pid of a process that has exited and been reaped.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Skipf("pid %d was reused", cmd.Process.Pid)
	}
	return cmd.Process.Pid
}
