//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pelletier/go-toml/v2"

	"github.com/lxcri/lxcri/runtime"
	lxcrishim "github.com/lxcri/lxcri/shim"
)

// masked replaces a secret's value in `lxcri config`.
const masked = "********"

// annotationFlags collects repeated --annotation KEY=VALUE flags.
type annotationFlags map[string]string

func (a annotationFlags) String() string { return "" }

func (a annotationFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("annotation %q: want KEY=VALUE", v)
	}
	a[k] = val
	return nil
}

func cmdConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, asJSON := newFlags("config", " [ID]", stderr)
	optPath := fs.String("runtime-config", "", "runtime options' config_path (a handler's ConfigPath, ctr --runtime-config-path)")
	optBody := fs.String("runtime-config-body", "", "runtime options' config_body (TOML, a handler's options table)")
	id := fs.String("id", "", "the container id [[route]] patterns match (without ID)")
	ann := annotationFlags{}
	fs.Var(ann, "annotation", "a container annotation KEY=VALUE (repeatable)")
	root := fs.String("root", defaultStateRoot, "containerd's state folder (with ID)")
	ns := fs.String("n", "", "the container's namespace (with ID)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	var cfg *runtime.Config
	switch len(pos) {
	case 0:
		// what a new container with these options and annotations would get
		var opts typeurl.Any
		if *optPath != "" || *optBody != "" {
			opts, err = typeurl.MarshalAny(&runtimeoptions.Options{ConfigPath: *optPath, ConfigBody: []byte(*optBody)})
			if err != nil {
				return err
			}
		}
		var spec *specs.Spec
		if len(ann) > 0 {
			spec = &specs.Spec{Annotations: ann}
		}
		if cfg, err = lxcrishim.EffectiveConfig(*id, opts, spec); err != nil {
			return err
		}
	case 1:
		// what a running container got, as its shim recorded it
		if *optPath != "" || *optBody != "" || len(ann) > 0 || *id != "" {
			return fmt.Errorf("with a container ID, --id, --runtime-config, --runtime-config-body and --annotation do not apply")
		}
		cs, err := findContainers(ctx, *root, *ns)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if c.ID != pos[0] {
				continue
			}
			if cfg != nil {
				return fmt.Errorf("container %q is in several namespaces: say which with -n", pos[0])
			}
			br, err := lxcrishim.ReadBundle(c.Bundle)
			if err != nil {
				return err
			}
			if br.Config == nil {
				return fmt.Errorf("container %s/%s: its shim recorded no configuration", c.Namespace, c.ID)
			}
			cfg = br.Config
		}
		if cfg == nil {
			return fmt.Errorf("no lxcri container %q under %s", pos[0], *root)
		}
	default:
		fs.Usage()
		return exitError(2)
	}
	m, err := maskedConfig(cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, m)
	}
	b, err := toml.Marshal(m)
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

// maskedConfig is cfg as a TOML/JSON tree whose secrets (keys naming a secret, a password
// or a private key, but not a file holding one) are masked.
func maskedConfig(cfg *runtime.Config) (map[string]any, error) {
	b, err := toml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := toml.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	mask(m)
	return m, nil
}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	if strings.HasSuffix(k, "_file") || strings.HasSuffix(k, "_path") {
		return false
	}
	for _, s := range []string{"secret", "password", "private_key", "passphrase"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

func mask(v any) {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if isSecretKey(k) {
				if s, ok := t[k].(string); !ok || s != "" {
					t[k] = masked
				}
				continue
			}
			mask(t[k])
		}
	case []any:
		for _, e := range t {
			mask(e)
		}
	}
}
