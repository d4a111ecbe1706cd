package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestConfigMerge(t *testing.T) {
	for _, tc := range []struct {
		name    string
		layers  []string
		backend string
		binary  string
		errIs   func(error) bool
		errMsg  string
	}{
		{name: "defaults", backend: DefaultBackend},
		{name: "backend", layers: []string{`backend = "lxc"`}, backend: "lxc"},
		{name: "later layer wins key by key", layers: []string{"backend = \"lxc\"\n[crun]\nbinary = \"runc\"", `backend = "crun"`}, backend: "crun", binary: "runc"},
		{name: "malformed", layers: []string{"backend = "}, errIs: errdefs.IsInvalidArgument, errMsg: "malformed TOML in layer0 at line 1"},
		{name: "unknown key", layers: []string{"[crun]\nbinnary = \"x\""}, errIs: errdefs.IsInvalidArgument, errMsg: "unknown key in layer0: crun.binnary"},
		{name: "wrong type", layers: []string{"backend = 3"}, errIs: errdefs.IsInvalidArgument, errMsg: "layer0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			var err error
			for i, l := range tc.layers {
				if err = c.Merge("layer"+string(rune('0'+i)), []byte(l)); err != nil {
					break
				}
			}
			if tc.errIs != nil {
				if err == nil || !tc.errIs(err) || !strings.Contains(err.Error(), tc.errMsg) {
					t.Fatalf("error %v, want one containing %q", err, tc.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Backend != tc.backend || c.Crun.Binary != tc.binary {
				t.Errorf("backend %q binary %q, want %q %q", c.Backend, c.Crun.Binary, tc.backend, tc.binary)
			}
		})
	}
}

func TestLoadHostConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.toml")
	os.WriteFile(p, []byte("backend = \"lxc\"\nstate_dir = \"/run/x\"\n"), 0o644)
	t.Setenv(ConfigPathEnv, p)
	c, err := LoadHostConfig()
	if err != nil || c.Backend != "lxc" || c.StateDir != "/run/x" {
		t.Fatalf("LoadHostConfig: %+v %v", c, err)
	}
	t.Setenv(ConfigPathEnv, filepath.Join(dir, "missing.toml"))
	if _, err := LoadHostConfig(); !errdefs.IsNotFound(err) {
		t.Fatalf("an explicit missing config file: %v, want NotFound", err)
	}
}

func TestValidateBackend(t *testing.T) {
	for _, n := range KnownBackends {
		if err := ValidateBackend(n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	err := ValidateBackend("docker")
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `unknown backend "docker": valid backends are crun, lxc, proxmox-lxc, proxmox-vm`) {
		t.Errorf("unknown backend: %v", err)
	}
}
