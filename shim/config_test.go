package shim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestEffectiveConfigAnnotations: the backend annotation takes effect only where the
// operator's configuration (host file or runtime options) allows it, and only with a
// backend name as its value.
func TestEffectiveConfigAnnotations(t *testing.T) {
	allow := "allowed_annotations = [\"io.lxcri.*\"]\n"
	for _, tc := range []struct {
		name    string
		host    string
		options string // config_body
		value   string // io.lxcri.backend; "" for none
		backend string
		errIs   func(error) bool
		errMsg  string
	}{
		{name: "no annotation", backend: "lxc"},
		{name: "refused by default", value: "crun", errIs: errdefs.IsInvalidArgument,
			errMsg: `annotation "io.lxcri.backend" is not allowed: the operator allows it with allowed_annotations in /etc/lxcri/config.toml`},
		{name: "allowed by the host file", host: allow, value: "crun", backend: "crun"},
		{name: "allowed by the runtime options", options: allow, value: "crun", backend: "crun"},
		{name: "runtime options withdraw the host's allowance", host: allow, options: "allowed_annotations = []\n", value: "crun",
			errIs: errdefs.IsInvalidArgument, errMsg: `annotation "io.lxcri.backend" is not allowed`},
		{name: "unknown backend", host: allow, value: "nope", errIs: errdefs.IsInvalidArgument,
			errMsg: `annotation io.lxcri.backend: unknown backend "nope": valid backends are`},
		{name: "config line in the value", host: allow, value: "lxc\nlxc.hook.pre-start=/bin/true", errIs: errdefs.IsInvalidArgument,
			errMsg: `unknown backend "lxc\nlxc.hook.pre-start=/bin/true"`},
		{name: "path in the value", host: allow, value: "../../etc", errIs: errdefs.IsInvalidArgument,
			errMsg: `unknown backend "../../etc"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(cfgPath, []byte(tc.host), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Setenv("LXCRI_CONFIG", cfgPath)
			var opts typeurl.Any
			if tc.options != "" {
				a, err := typeurl.MarshalAny(&runtimeoptions.Options{ConfigBody: []byte(tc.options)})
				if err != nil {
					t.Fatal(err)
				}
				opts = a
			}
			spec := &specs.Spec{}
			if tc.value != "" {
				spec.Annotations = map[string]string{"io.lxcri.backend": tc.value}
			}
			cfg, err := effectiveConfig(opts, spec)
			if tc.errIs != nil {
				if err == nil || !tc.errIs(err) || !strings.Contains(err.Error(), tc.errMsg) {
					t.Fatalf("got %v, want an error saying %q", err, tc.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Backend != tc.backend {
				t.Errorf("backend %q, want %q", cfg.Backend, tc.backend)
			}
		})
	}
}
