package shim

import (
	"errors"
	"os"

	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/runtime"
)

// RecordFile is the file a bundle of an lxcri container holds; its presence tells an lxcri
// bundle from another runtime's.
const RecordFile = recordFile

// BundleRecord is what the shim keeps in a container's bundle, as operator tools read it.
type BundleRecord struct {
	// Backend runs the container.
	Backend string `json:"backend"`
	// StateDir is the container's private state folder.
	StateDir string `json:"state_dir"`
	// Config is the container's effective configuration.
	Config *runtime.Config `json:"config,omitempty"`
	// Exit is the init's exit, once it exited.
	Exit *runtime.Exit `json:"exit,omitempty"`
}

// ReadBundle reads the shim's records in bundle. It answers an error satisfying
// errors.Is(err, os.ErrNotExist) for a bundle that is not lxcri's.
func ReadBundle(bundle string) (*BundleRecord, error) {
	r, err := readRecord(bundle)
	if err != nil {
		return nil, err
	}
	br := &BundleRecord{Backend: r.Backend, StateDir: r.StateDir, Config: r.Config}
	e, err := readExit(bundle)
	switch {
	case err == nil:
		br.Exit = &e
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	return br, nil
}

// EffectiveConfig is the configuration container id created with these runtime options and
// spec would get: the host file, the runtime options, the routes, then its annotations where
// allowed.
func EffectiveConfig(id string, options typeurl.Any, spec *specs.Spec) (*runtime.Config, error) {
	return effectiveConfig(id, options, spec)
}
