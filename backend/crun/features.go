package crun

import (
	"context"
	"fmt"
	"path/filepath"

	runc "github.com/containerd/go-runc"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// Features is what the CLI says of itself (`<cli> features`), as containerd's runc shim
// reports it: mount options such as rro, idmapped mounts, seccomp, namespaces.
func (b *backend) Features(ctx context.Context) (*features.Features, error) {
	f, err := (&runc.Runc{Command: b.binary}).Features(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s features: %w", filepath.Base(b.binary), err)
	}
	return f, nil
}
