package cgroups

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
)

// ociPath is a parsed OCI cgroupsPath.
type ociPath struct {
	// raw is the path as the spec gave it, for error messages.
	raw string
	// clean is the cleaned path; absolute when nested is false.
	clean string
	// nested is true for a relative path, to be placed under the caller's own cgroup.
	nested bool
}

// parsePath checks an OCI cgroupsPath and tells whether it is rooted or nested.
func parsePath(path string) (ociPath, error) {
	if path == "" {
		return ociPath{}, fmt.Errorf("cgroup path is empty: %w", errdefs.ErrInvalidArgument)
	}
	if !strings.HasPrefix(path, "/") && strings.Count(path, ":") == 2 {
		return ociPath{}, fmt.Errorf("cgroup %s: systemd slice:prefix:name paths are not supported, load by pid: %w",
			path, errdefs.ErrNotImplemented)
	}
	if filepath.IsAbs(path) {
		return ociPath{raw: path, clean: filepath.Clean(path)}, nil
	}
	clean := filepath.Clean(path)
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return ociPath{}, fmt.Errorf("cgroup %s: relative path leaves its parent: %w", path, errdefs.ErrInvalidArgument)
	}
	return ociPath{raw: path, clean: clean, nested: true}, nil
}
