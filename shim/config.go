package shim

import (
	"fmt"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/lxcri/lxcri/runtime"
)

// effectiveConfig layers the configuration of container id: the host file, then the
// runtime options containerd passes (a RuntimeClass handler's options, or
// `ctr --runtime-config-path`), then the backend annotation where the first two allow it.
// Both configuration sources are the operator's: either may set allowed_annotations.
//
// The backend is, first that says: the annotation (where allowed), the runtime options'
// backend, the first [[route]] that matches the container, the host file's backend, the
// built-in default.
func effectiveConfig(id string, options typeurl.Any, spec *specs.Spec) (*runtime.Config, error) {
	cfg, err := runtime.LoadHostConfig()
	if err != nil {
		return nil, err
	}
	// Which backend the runtime options chose, if any: they are read over an empty backend.
	hostBackend := cfg.Backend
	cfg.Backend = ""
	if options != nil && options.GetTypeUrl() != "" {
		v, err := typeurl.UnmarshalAny(options)
		if err != nil {
			return nil, fmt.Errorf("runtime options of type %s: %v: %w", options.GetTypeUrl(), err, errdefs.ErrInvalidArgument)
		}
		switch o := v.(type) {
		case *runtimeoptions.Options:
			if o.ConfigPath != "" {
				if err := cfg.MergeFile(o.ConfigPath, true); err != nil {
					return nil, err
				}
			}
			if len(o.ConfigBody) > 0 {
				if err := cfg.Merge("runtime options config_body", o.ConfigBody); err != nil {
					return nil, err
				}
			}
		case *runcoptions.Options:
			// runc's options, as `ctr --runc-binary` and runc-style RuntimeClass handlers
			// send them: the binary chooses the crun backend's CLI.
			if o.BinaryName != "" {
				cfg.Crun.Binary = o.BinaryName
			}
			// Root is where the CLI keeps its state, as with containerd's runc shim, so
			// the runtime's own CLI (`runc --root <root>/<namespace>`) sees the container.
			if o.Root != "" {
				if err := runtime.ValidateStateRoot("runtime options root", o.Root); err != nil {
					return nil, err
				}
				cfg.Crun.Root = o.Root
			}
		default:
			return nil, fmt.Errorf("runtime options of type %s are not lxcri's (use runtimeoptions.v1.Options with config_path or config_body): %w", options.GetTypeUrl(), errdefs.ErrInvalidArgument)
		}
	}
	optionsChose := cfg.Backend != ""
	if !optionsChose {
		cfg.Backend = hostBackend
	}
	var annotations map[string]string
	if spec != nil {
		annotations = spec.Annotations
	}
	// Routes choose per container; without one (the runtime's -info) they do not apply.
	if _, annotated := annotations[runtime.BackendAnnotation]; id != "" && !optionsChose && !annotated {
		if r := cfg.Route(runtime.RouteInput{ID: id, Annotations: annotations}); r != nil {
			r.Apply(cfg)
		}
	}
	if spec != nil {
		if err := cfg.CheckAnnotations(spec.Annotations); err != nil {
			return nil, err
		}
		if b, ok := spec.Annotations[runtime.BackendAnnotation]; ok {
			// The value goes into the bundle's record and the log: it must be a backend name.
			if err := runtime.ValidateBackend(b); err != nil {
				return nil, fmt.Errorf("annotation %s: %w", runtime.BackendAnnotation, err)
			}
			cfg.Backend = b
		}
	}
	if err := runtime.ValidateBackend(cfg.Backend); err != nil {
		return nil, err
	}
	return cfg, nil
}
