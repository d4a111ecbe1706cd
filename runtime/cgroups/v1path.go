package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup1"
)

// v1ProcPath returns lib (cgroup1.PidPath or cgroup1.NestedPath) unless it failed because a
// controller listed in procFile has no mount here. The library resolves every listed
// controller at once, so one v1 hierarchy mounted only elsewhere (hugetlb mounted by hand
// for crun on a hybrid host) breaks it for all. The fallback resolves each controller when
// cgroup1.Load asks for it, and Load only asks for mounted ones.
func v1ProcPath(procFile, suffix string, lib cgroup1.Path) cgroup1.Path {
	if _, err := lib(cgroup1.Memory); !errors.Is(err, cgroup1.ErrNoCgroupMountDestination) {
		return lib
	}
	paths, err := cgroup1.ParseCgroupFile(procFile)
	if err != nil {
		err = fmt.Errorf("parse cgroup file %s: %w", procFile, err)
		return func(cgroup1.Name) (string, error) { return "", err }
	}
	return func(name cgroup1.Name) (string, error) {
		key := string(name)
		p, ok := paths[key]
		if !ok {
			key = "name=" + key
			if p, ok = paths[key]; !ok {
				return "", cgroup1.ErrControllerNotActive
			}
		}
		root, err := v1MountRoot(key)
		if err != nil {
			return "", err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return "", fmt.Errorf("cgroup %s of %s is outside its mount %s: %w", p, key, root, cgroup1.ErrControllerNotActive)
		}
		return filepath.Join("/", rel, suffix), nil
	}
}

// v1MountRoot is the root, inside its hierarchy, of the v1 cgroup mount holding controller
// (as /proc/self/mountinfo's fourth field): "/" unless the mount shows a subtree.
func v1MountRoot(controller string) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		sep := slices.Index(fields, "-")
		if sep < 4 || len(fields) < sep+4 || fields[sep+1] != "cgroup" {
			continue
		}
		if slices.Contains(strings.Split(fields[sep+3], ","), controller) {
			return fields[3], nil
		}
	}
	if err := s.Err(); err != nil {
		return "", err
	}
	return "", cgroup1.ErrNoCgroupMountDestination
}
