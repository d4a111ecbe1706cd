//go:build linux

package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var image struct {
	mu   sync.Mutex
	path string
}

// BusyboxImage returns the path of an OCI image-layout tarball of the busybox image
// (DefaultImage), built by contrib/scripts/build-image.sh at most once per test binary.
//
// The build is deterministic, so the tarball is kept in the lxcri cache folder
// (${XDG_CACHE_HOME:-~/.cache}/lxcri/images) under a name derived from the busybox binary,
// the script and the reference: later test binaries reuse it, and a new busybox or script
// gives a new file.
func BusyboxImage(t testing.TB) string {
	t.Helper()
	image.mu.Lock()
	defer image.mu.Unlock()
	if image.path != "" {
		return image.path
	}
	root := RepoRoot()
	if root == "" {
		t.Fatalf("harness: cannot find the lxcri source tree (go.mod of github.com/lxcri/lxcri) to run contrib/scripts/build-image.sh")
	}
	script := filepath.Join(root, "contrib", "scripts", "build-image.sh")
	sb, err := os.ReadFile(script)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("harness: /bin/busybox: %v; %s (it installs busybox-static)", err, setupHint)
	}
	h := sha256.New()
	for _, b := range [][]byte{sb, {0}, bb, {0}, []byte(DefaultImage)} {
		h.Write(b)
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]

	dir, err := cacheDir("images")
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	out := filepath.Join(dir, "busybox-"+key+".oci.tar")
	if _, err := os.Stat(out); err != nil {
		cmd := exec.Command(script, out, DefaultImage)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("harness: %s: %v\n%s", script, err, b)
		}
	}
	image.path = out
	return out
}

func cacheDir(sub string) (string, error) {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot locate the cache folder: %w", err)
		}
		cache = filepath.Join(home, ".cache")
	}
	dir := filepath.Join(cache, "lxcri", sub)
	return dir, os.MkdirAll(dir, 0o755)
}
