// Package crun is the backend that drives any runc-compatible CLI (crun, runc, youki)
// through go-runc: the CLI makes and runs the container, the shim keeps stdio, exits and
// cgroup metrics.
package crun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"

	"github.com/lxcri/lxcri/runtime"
)

// Name is the backend's configuration name.
const Name = "crun"

// DefaultBinary is used when [crun] binary is not set.
const DefaultBinary = "crun"

type backend struct {
	binary string
	root   string
	cfg    runtime.CrunConfig
}

// New makes the backend from the [crun] table of cfg. It fails when the CLI is missing.
func New(ctx context.Context, cfg *runtime.Config) (runtime.Backend, error) {
	name := cfg.Crun.Binary
	if name == "" {
		name = DefaultBinary
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("crun backend: runtime binary %q not found: %w", name, errdefs.ErrFailedPrecondition)
	}
	root := cfg.Crun.Root
	if root == "" {
		root = filepath.Join(cfg.StateDir, filepath.Base(bin))
	}
	return &backend{binary: bin, root: root, cfg: cfg.Crun}, nil
}

func (b *backend) Name() string { return Name }

// Needs: a local backend; the container runs on this host from the rootfs the shim
// mounts, its processes are host processes, and checkpoints go to the shim's ZFS store.
func (b *backend) Needs() runtime.Needs {
	return runtime.Needs{HostRootfs: true, HostPids: true}
}

func (b *backend) cli(namespace, stateDir string) *runc.Runc {
	return &runc.Runc{
		Command:       b.binary,
		Root:          filepath.Join(b.root, namespace),
		Log:           filepath.Join(stateDir, "log.json"),
		LogFormat:     runc.JSON,
		SystemdCgroup: b.cfg.SystemdCgroup,
	}
}

func (b *backend) Create(ctx context.Context, req *runtime.CreateRequest) (runtime.Container, error) {
	c := &container{
		id:       req.ID,
		bundle:   req.Bundle,
		stateDir: req.StateDir,
		cli:      b.cli(req.Namespace, req.StateDir),
		exits:    req.Exits,
		// Without a pid namespace of its own, the init's death ends no other process.
		killAllOnExit: !runtime.OwnsPIDNamespace(req.Spec),
	}
	if err := c.create(ctx, req.IO); err != nil {
		return nil, err
	}
	return c, nil
}

func (b *backend) Cleanup(ctx context.Context, req *runtime.CleanupRequest) error {
	cli := b.cli(req.Namespace, req.StateDir)
	if err := cli.Delete(ctx, req.ID, &runc.DeleteOpts{Force: true}); err != nil && !isNotExist(err) {
		return fmt.Errorf("%s delete %s: %w", filepath.Base(b.binary), req.ID, err)
	}
	return nil
}

// isNotExist tells whether the CLI said the container does not exist.
func isNotExist(err error) bool {
	return err != nil && (errors.Is(err, os.ErrNotExist) || containsAny(err.Error(), "does not exist", "not exist", "not found", "No such file"))
}
