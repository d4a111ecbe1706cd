package runtime

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestExecRequestProcess(t *testing.T) {
	for _, tc := range []struct {
		name           string
		spec, terminal bool
	}{
		{"terminal asked, spec without", false, true},
		{"no terminal asked, spec with", true, false},
		{"both", true, true},
		{"neither", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := &specs.Process{Args: []string{"sh"}, Terminal: tc.spec}
			r := &ExecRequest{ID: "e", Spec: spec, IO: &IO{stdio: Stdio{Terminal: tc.terminal}}}
			p := r.Process()
			if p.Terminal != tc.terminal {
				t.Errorf("Terminal %v, want the request's %v", p.Terminal, tc.terminal)
			}
			if spec.Terminal != tc.spec || p == spec {
				t.Errorf("the request's spec was changed")
			}
		})
	}
	if (&ExecRequest{}).Process() != nil {
		t.Error("no spec: want nil")
	}
}
