package runtime

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestCheckpointNeedsZFS(t *testing.T) {
	for _, b := range []string{"lxc", "crun"} {
		err := CheckpointNeedsZFS(b)
		if !errdefs.IsFailedPrecondition(err) {
			t.Errorf("%s: %v is not FailedPrecondition", b, err)
		}
		for _, w := range []string{"the " + b + " backend", "[zfs] dataset", DefaultConfigPath, ConfigPathEnv, "config_path"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", b, err, w)
			}
		}
		if strings.Contains(err.Error(), "not built yet") {
			t.Errorf("%s: %q", b, err)
		}
	}
}
