package shim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
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
			cfg, err := effectiveConfig("c1", opts, spec)
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

// TestEffectiveConfigPrecedence: the backend is, first that says: the annotation (where
// allowed), the runtime options, the first matching route, the host file's backend, the
// built-in default.
func TestEffectiveConfigPrecedence(t *testing.T) {
	routes := "[[route]]\nid = \"^r-\"\nbackend = \"crun\"\n[route.crun]\nbinary = \"runc\"\n"
	for _, tc := range []struct {
		name, host, options, annotation, id string
		backend, binary                     string
	}{
		{name: "built-in default", id: "c", backend: "lxc"},
		{name: "host backend", host: "backend = \"crun\"\n", id: "c", backend: "crun"},
		{name: "route over host backend", host: "backend = \"proxmox-lxc\"\n" + routes, id: "r-1", backend: "crun", binary: "runc"},
		{name: "no matching route: host backend", host: "backend = \"proxmox-lxc\"\n" + routes, id: "c", backend: "proxmox-lxc"},
		{name: "runtime options over route", host: routes, options: "backend = \"lxc\"\n", id: "r-1", backend: "lxc"},
		{name: "runtime options without backend: route", host: routes, options: "[lxc]\nlog_level = \"DEBUG\"\n", id: "r-1", backend: "crun", binary: "runc"},
		{name: "routes in the runtime options", options: routes, id: "r-1", backend: "crun", binary: "runc"},
		{name: "allowed annotation over everything", host: "allowed_annotations = [\"io.lxcri.backend\"]\n" + routes, options: "backend = \"crun\"\n",
			annotation: "lxc", id: "r-1", backend: "lxc"},
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
			if tc.annotation != "" {
				spec.Annotations = map[string]string{"io.lxcri.backend": tc.annotation}
			}
			cfg, err := effectiveConfig(tc.id, opts, spec)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Backend != tc.backend || cfg.Crun.Binary != tc.binary {
				t.Errorf("backend %q binary %q, want %q %q", cfg.Backend, cfg.Crun.Binary, tc.backend, tc.binary)
			}
		})
	}
}

// TestEffectiveConfigRuncOptions: runc's runtime options choose the crun backend's CLI
// and its state root, as with containerd's runc shim; a root that is not an absolute,
// clean path is refused naming the field, in runc's options as in the host file.
func TestEffectiveConfigRuncOptions(t *testing.T) {
	for _, tc := range []struct {
		name         string
		host         string
		opts         *runcoptions.Options
		binary, root string
		errMsg       string // "" for success
	}{
		{name: "binary and root", opts: &runcoptions.Options{BinaryName: "runc", Root: "/run/x/runc"}, binary: "runc", root: "/run/x/runc"},
		{name: "root only", host: "[crun]\nroot = \"/run/host\"\n", opts: &runcoptions.Options{Root: "/run/y"}, root: "/run/y"},
		{name: "no root keeps the host's", host: "[crun]\nroot = \"/run/host\"\n", opts: &runcoptions.Options{BinaryName: "runc"}, binary: "runc", root: "/run/host"},
		{name: "relative root", opts: &runcoptions.Options{Root: "run/x"}, errMsg: `runtime options root "run/x": must be an absolute, clean path`},
		{name: "unclean root", opts: &runcoptions.Options{Root: "/run/../etc"}, errMsg: `runtime options root "/run/../etc": must be an absolute, clean path`},
		{name: "relative root in the host file", host: "[crun]\nroot = \"state\"\n", errMsg: `crun.root "state": must be an absolute, clean path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(cfgPath, []byte(tc.host), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Setenv("LXCRI_CONFIG", cfgPath)
			var opts typeurl.Any
			if tc.opts != nil {
				a, err := typeurl.MarshalAny(tc.opts)
				if err != nil {
					t.Fatal(err)
				}
				opts = a
			}
			cfg, err := effectiveConfig("c1", opts, &specs.Spec{})
			if tc.errMsg != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.errMsg) {
					t.Fatalf("got %v, want InvalidArgument saying %q", err, tc.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Crun.Binary != tc.binary || cfg.Crun.Root != tc.root {
				t.Errorf("crun binary %q root %q, want %q %q", cfg.Crun.Binary, cfg.Crun.Root, tc.binary, tc.root)
			}
		})
	}
}
