//go:build linux

package shim_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lxcri/lxcri/integration/harness"
)

const rt = harness.RuntimeType

// TestRunExitCodes: what `ctr run --rm` prints and exits with is what the process did.
func TestRunExitCodes(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			checkRunExitCodes(t, start(t, b), "run-")
		})
	}
}

// checkRunExitCodes runs containers named prefix+case with `ctr run --rm` and checks
// their stdout, stderr and exit code.
func checkRunExitCodes(t *testing.T, env *harness.Env, prefix string) {
	t.Helper()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
	}{
		{"echo", []string{"echo", "hello"}, 0, "hello\n"},
		{"exit7", []string{"sh", "-c", "exit 7"}, 7, ""},
		{"stderr", []string{"sh", "-c", "echo oops >&2; exit 3"}, 3, ""},
	} {
		args := append([]string{"run", "--rm", "--runtime", rt, env.Image, prefix + tc.name}, tc.args...)
		out, errOut, code := env.Ctr(args...)
		if code != tc.code || out != tc.stdout {
			t.Errorf("%s: exit %d stdout %q, want exit %d stdout %q (stderr %s)", tc.name, code, out, tc.code, tc.stdout, errOut)
		}
		if tc.name == "stderr" && !strings.Contains(errOut, "oops") {
			t.Errorf("stderr of the container not passed through: %q", errOut)
		}
	}
}

// TestRunKilledBySignal: a process killed by SIGKILL exits 137, as a shell reports it.
func TestRunKilledBySignal(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			type result struct {
				code int
				err  string
			}
			done := make(chan result, 1)
			go func() {
				_, errOut, code := env.Ctr("run", "--rm", "--runtime", rt, env.Image, "killed", "sleep", "1000")
				done <- result{code, errOut}
			}()
			waitRunning(t, env, "killed")
			if _, errOut, code := env.Ctr("task", "kill", "-s", "SIGKILL", "killed"); code != 0 {
				t.Fatalf("ctr task kill: exit %d: %s", code, errOut)
			}
			select {
			case r := <-done:
				if r.code != 137 {
					t.Errorf("ctr run exit %d, want 137 (stderr %s)", r.code, r.err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("ctr run did not return after SIGKILL")
			}
		})
	}
}

// TestRunLogFile: `--log-uri file://` sends the container's output to a file.
func TestRunLogFile(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			logPath := filepath.Join(t.TempDir(), "out.log")
			_, errOut, code := env.Ctr("run", "--rm", "--runtime", rt, "--log-uri", "file://"+logPath, env.Image, "logfile", "sh", "-c", "echo to-file; echo err-to-file >&2")
			if code != 0 {
				t.Fatalf("ctr run with a log file: exit %d: %s", code, errOut)
			}
			b, err := os.ReadFile(logPath)
			if err != nil || !strings.Contains(string(b), "to-file\n") || !strings.Contains(string(b), "err-to-file\n") {
				t.Errorf("log file: %q %v, want both lines", b, err)
			}
		})
	}
}
