//go:build linux

package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/lxcri/lxcri/integration/harness"
)

// wrapContainerd points LXCRI_TOOLS_DIR at a folder whose containerd runs the real one
// at the given log level (the harness starts it with --log-level debug, which also makes
// containerd start every shim with -debug), the other tools being links to the real ones.
// The returned function restores LXCRI_TOOLS_DIR; the folder is removed by tb's cleanup.
func wrapContainerd(tb testing.TB, level string) (restore func(), err error) {
	real := harness.ToolsDir(tb)
	dir, err := os.MkdirTemp("", "lxcri-bench-tools-")
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	ents, err := os.ReadDir(real)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.Name() == "containerd" {
			continue
		}
		if err := os.Symlink(filepath.Join(real, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return nil, err
		}
	}
	script := fmt.Sprintf(`#!/bin/bash
# lxcri-bench: containerd at log level %[1]s instead of the harness's debug
a=("$@")
for ((i = 0; i < ${#a[@]}; i++)); do
  [ "${a[$i]}" = --log-level ] && a[$((i + 1))]=%[1]s
done
exec %[2]q "${a[@]}"
`, level, filepath.Join(real, "containerd"))
	if err := os.WriteFile(filepath.Join(dir, "containerd"), []byte(script), 0o755); err != nil {
		return nil, err
	}
	old, had := os.LookupEnv("LXCRI_TOOLS_DIR")
	os.Setenv("LXCRI_TOOLS_DIR", dir)
	return func() {
		if had {
			os.Setenv("LXCRI_TOOLS_DIR", old)
		} else {
			os.Unsetenv("LXCRI_TOOLS_DIR")
		}
	}, nil
}

// removeNamespaceCgroups removes the (empty) cgroups named after the run's namespace that
// the runtimes leave behind as the parents of the containers' cgroups.
func removeNamespaceCgroups(tb testing.TB, ns string) {
	dirs := harness.CgroupsNamed(ns)
	for _, d := range dirs {
		var sub []string
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				sub = append(sub, p)
			}
			return nil
		})
		sort.Slice(sub, func(i, j int) bool { return len(sub[i]) > len(sub[j]) })
		for _, s := range sub {
			if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
				tb.Logf("bench: cleanup: rmdir %s: %v", s, err)
			}
		}
	}
}
