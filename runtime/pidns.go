package runtime

import specs "github.com/opencontainers/runtime-spec/specs-go"

// OwnsPIDNamespace tells whether the container's processes live in a pid namespace made
// for it, which the kernel empties when the container's init dies. A pid entry with a path
// joins another container's (or the host's) namespace, and no pid entry means the
// runtime's own: in both cases the init's death leaves the other processes running.
func OwnsPIDNamespace(spec *specs.Spec) bool {
	if spec == nil || spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace && ns.Path == "" {
			return true
		}
	}
	return false
}
