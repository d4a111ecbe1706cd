package pvesim

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var images struct {
	mu    sync.Mutex
	dir   string
	built map[string]string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pvesim-test-images-")
	if err != nil {
		panic(err)
	}
	images.dir, images.built = dir, map[string]string{}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "contrib", "scripts", "build-image.sh")); err == nil {
			return d
		}
	}
	t.Fatal("cannot find contrib/scripts/build-image.sh above the test's directory")
	return ""
}

// busyboxArchive builds (once per test binary and command) an OCI archive of the busybox
// image with cmd as its Cmd, offline, with contrib/scripts/build-image.sh.
func busyboxArchive(t *testing.T, ref, cmdJSON string) string {
	t.Helper()
	images.mu.Lock()
	defer images.mu.Unlock()
	key := ref + "\x00" + cmdJSON
	if p, ok := images.built[key]; ok {
		return p
	}
	out := filepath.Join(images.dir, "img-"+itoa(len(images.built))+".tar")
	cmd := exec.Command(filepath.Join(repoRoot(t), "contrib", "scripts", "build-image.sh"), out, ref, cmdJSON)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-image.sh: %v\n%s", err, b)
	}
	images.built[key] = out
	return out
}

// putTemplate copies an archive into the emulator's template storage as name.
func putTemplate(t *testing.T, s *Server, archive, name string) string {
	t.Helper()
	st := s.storages[DefaultTemplateStorage]
	if err := copyFile(archive, filepath.Join(st.templateDir(), name)); err != nil {
		t.Fatal(err)
	}
	return DefaultTemplateStorage + ":vztmpl/" + name
}
