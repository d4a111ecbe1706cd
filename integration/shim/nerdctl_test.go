//go:build linux

package shim_test

import (
	"strings"
	"testing"
	"time"
)

// TestNerdctl: nerdctl runs containers on lxcri, with its logs (a binary:// logger) and exec.
func TestNerdctl(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			out, errOut, code := env.Nerdctl("run", "--rm", "--runtime", rt, "--net", "none", env.Image, "echo", "hello-nerdctl")
			if code != 0 || strings.TrimSpace(out) != "hello-nerdctl" {
				t.Fatalf("nerdctl run: exit %d stdout %q stderr %s", code, out, errOut)
			}
			out, errOut, code = env.Nerdctl("run", "-d", "--name", "nd", "--runtime", rt, "--net", "none", env.Image, "sh", "-c", "echo logged-line; sleep 1000")
			if code != 0 {
				t.Fatalf("nerdctl run -d: exit %d: %s%s", code, out, errOut)
			}
			defer env.Nerdctl("rm", "-f", "nd")
			deadline := time.Now().Add(15 * time.Second)
			for {
				out, errOut, _ = env.Nerdctl("logs", "nd")
				if strings.Contains(out, "logged-line") || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !strings.Contains(out, "logged-line") {
				t.Errorf("nerdctl logs: %q %s, want logged-line", out, errOut)
			}
			out, errOut, code = env.Nerdctl("exec", "nd", "sh", "-c", "echo in-$((1+1))")
			if code != 0 || strings.TrimSpace(out) != "in-2" {
				t.Errorf("nerdctl exec: exit %d stdout %q stderr %s", code, out, errOut)
			}
			if out, errOut, code = env.Nerdctl("rm", "-f", "nd"); code != 0 {
				t.Errorf("nerdctl rm -f: exit %d: %s%s", code, out, errOut)
			}
		})
	}
}
