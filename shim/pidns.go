package shim

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/runtime"
)

// ownsPIDNamespace: see runtime.OwnsPIDNamespace (backends need the same answer).
func ownsPIDNamespace(spec *specs.Spec) bool { return runtime.OwnsPIDNamespace(spec) }
