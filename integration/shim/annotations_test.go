//go:build linux

package shim_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackendAnnotation: the annotation io.lxcri.backend switches a container's backend
// only where the operator allows it. Without allowed_annotations, ctr's container is
// refused with the setting to change and nothing is left behind; with it (here in the
// runtime options), the annotation picks the lxc backend over the host's crun.
func TestBackendAnnotation(t *testing.T) {
	var b backendCase
	for _, c := range backends() {
		if c.name == "crun-runc" {
			b = c
		}
	}
	env := start(t, b)
	_, errOut, code := env.Ctr("run", "--rm", "--runtime", rt, "--annotation", "io.lxcri.backend=lxc", env.Image, "ann-refused", "true")
	want := `annotation "io.lxcri.backend" is not allowed: the operator allows it with allowed_annotations in /etc/lxcri/config.toml`
	if code == 0 || !strings.Contains(errOut, want) {
		t.Errorf("ctr run with a backend annotation not allowed: exit %d, stderr %q, want an error saying %q", code, errOut, want)
	}
	assertHealthyAndClean(t, env)

	allow := filepath.Join(t.TempDir(), "allow.toml")
	if err := os.WriteFile(allow, []byte("allowed_annotations = [\"io.lxcri.backend\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// liblxc sets container=lxc in the init's environment; runc does not.
	out, errOut, code := env.Ctr("run", "--rm", "--runtime", rt, "--runtime-config-path", allow,
		"--annotation", "io.lxcri.backend=lxc", env.Image, "ann-allowed", "sh", "-c", "echo backend-${container:-none}")
	if code != 0 || strings.TrimSpace(out) != "backend-lxc" {
		t.Errorf("ctr run with an allowed backend annotation: exit %d, stdout %q, stderr %q, want backend-lxc", code, out, errOut)
	}
	assertHealthyAndClean(t, env)
}
