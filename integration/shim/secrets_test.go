//go:build linux

package shim_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// hostCmdlinesHolding lists the host processes whose command line holds s.
func hostCmdlinesHolding(s string) []string {
	var found []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(b, []byte(s)) {
			found = append(found, fmt.Sprintf("pid %s: %q", e.Name(), bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		}
	}
	return found
}

// TestSecretsOffCmdline: a secret in the container's environment is on no host command
// line while the container and an exec'ed process (which gets the container's
// environment from ctr) run, once ctr itself has exited; and it reaches them.
func TestSecretsOffCmdline(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			env := start(t, b)
			raw := make([]byte, 12)
			if _, err := rand.Read(raw); err != nil {
				t.Fatal(err)
			}
			secret := "s3cr3t-" + hex.EncodeToString(raw)
			runDetached(t, env, "sec", []string{"--env", "LXCRI_IT_SECRET=" + secret}, "sleep", "1000")
			defer removeTask(t, env, "sec")
			ctrOK(t, env, "task", "exec", "--detach", "--exec-id", "e1", "sec", "sleep", "1000")
			if found := hostCmdlinesHolding(secret); len(found) > 0 {
				t.Errorf("the container's secret is on host command lines:\n%s", strings.Join(found, "\n"))
			}
			out := ctrOK(t, env, "task", "exec", "--exec-id", "e2", "sec", "sh", "-c", `echo "[$LXCRI_IT_SECRET]"`)
			if out != "["+secret+"]\n" {
				t.Errorf("exec printed %q, want the secret", out)
			}
		})
	}
}
