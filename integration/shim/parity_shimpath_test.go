//go:build linux

package shim_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lxcri/lxcri/integration/harness"
)

// TestShimFromAbsolutePath: containerd runs the shim from wherever its runtime names it
// (`--runtime /path/to/containerd-shim-lxcri-v2`, a CRI handler's runtime_path); a copy
// of the shim in a folder without lxcri-start still finds the helper, on PATH (where
// `make install` puts both). Only the lxc backend has a helper.
func TestShimFromAbsolutePath(t *testing.T) {
	b := backends()[0]
	env := start(t, b)
	dir := t.TempDir()
	copied := filepath.Join(dir, harness.ShimBinary)
	copyFile(t, filepath.Join(env.ShimDir, harness.ShimBinary), copied)

	out, errOut, code := env.Ctr("run", "--rm", "--runtime", copied, env.Image, "abspath", "echo", "from-a-copy")
	if code != 0 || strings.TrimSpace(out) != "from-a-copy" {
		t.Fatalf("ctr run --runtime %s: exit %d, stdout %q, stderr %q", copied, code, out, errOut)
	}
	waitNoShim(t, env)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
