package runtime

import specs "github.com/opencontainers/runtime-spec/specs-go"

// Process is the exec's process spec as a backend runs it: a copy of Spec whose terminal
// setting is the request's (its IO), as containerd's runc shim does. Clients build an
// exec's spec from the container's process, whose terminal is the init's: containerd's
// own client asks for a terminal only in the request.
func (r *ExecRequest) Process() *specs.Process {
	if r.Spec == nil {
		return nil
	}
	p := *r.Spec
	p.Terminal = r.IO != nil && r.IO.Terminal()
	return &p
}
