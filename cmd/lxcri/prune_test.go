//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/lxcri/lxcri/runtime"
)

// TestPruneRefuses: prune says what is missing before it touches containerd or ZFS.
func TestPruneRefuses(t *testing.T) {
	dir := t.TempDir()
	noZFS := filepath.Join(dir, "nozfs.toml")
	withZFS := filepath.Join(dir, "zfs.toml")
	os.WriteFile(noZFS, []byte("backend = \"lxc\"\n"), 0o644)
	os.WriteFile(withZFS, []byte("[zfs]\ndataset = \"tank/lxcri\"\n"), 0o644)
	for _, tc := range []struct {
		name, config string
		args         []string
		is           func(error) bool
		want         string
	}{
		{"no dataset", noZFS, nil, errdefs.IsFailedPrecondition, "[zfs] dataset"},
		{"negative age", withZFS, []string{"--min-age", "-1m"}, errdefs.IsInvalidArgument, "--min-age"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(runtime.ConfigPathEnv, tc.config)
			var out, errb bytes.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			err := run(ctx, append([]string{"prune"}, tc.args...), &out, &errb)
			if err == nil || !tc.is(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("prune: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}
