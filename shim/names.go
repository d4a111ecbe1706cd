package shim

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
)

// Namespaces, task ids and exec ids name folders, files, sockets, fifos, cgroups and ZFS
// datasets. containerd checks its own requests, but the shim serves whoever reaches its
// socket and is started by containerd with values it copies into paths: it checks every
// name itself, with containerd's identifier rules, before joining any path with it. Those
// rules admit no "/", no "..", no NUL and no doubled separator, so a name is one path
// component, and "--" (the separator of composed names such as ZFS datasets) cannot occur
// in one.

// validName checks one name; what says which (e.g. "task id").
func validName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%s is empty: %w", what, errdefs.ErrInvalidArgument)
	}
	if err := identifiers.Validate(name); err != nil {
		return fmt.Errorf("invalid %s %q: %w", what, name, err)
	}
	return nil
}

// requestNamespace is the namespace of a request (or of the shim's -namespace flag, which
// pkg/shim puts in the context), checked.
func requestNamespace(ctx context.Context) (string, error) {
	ns, _ := namespaces.Namespace(ctx)
	if err := validName("namespace", ns); err != nil {
		return "", err
	}
	return ns, nil
}

// containerStateDir is the state folder of container id of namespace ns under root:
// <root>/<ns>/<id>.
func containerStateDir(root, ns, id string) (string, error) {
	if err := validName("namespace", ns); err != nil {
		return "", err
	}
	if err := validName("task id", id); err != nil {
		return "", err
	}
	if root == "" || !filepath.IsAbs(root) {
		return "", fmt.Errorf("state_dir %q is not an absolute path: %w", root, errdefs.ErrInvalidArgument)
	}
	return filepath.Join(root, ns, id), nil
}
