package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/pelletier/go-toml/v2"
)

const (
	// DefaultConfigPath is where the host-wide configuration lives.
	DefaultConfigPath = "/etc/lxcri/config.toml"
	// ConfigPathEnv overrides DefaultConfigPath.
	ConfigPathEnv = "LXCRI_CONFIG"
	// BackendAnnotation chooses the backend of one container.
	BackendAnnotation = "io.lxcri.backend"
	// DefaultStateDir holds per-container state (LXC paths, runtime roots).
	DefaultStateDir = "/run/lxcri"
	// DefaultBackend is used when nothing else chooses.
	DefaultBackend = "lxc"
)

// KnownBackends are the names a configuration may choose.
var KnownBackends = []string{"crun", "lxc", "proxmox-lxc", "proxmox-vm"}

// Config is lxcri's one configuration schema. The same TOML is read from the host file and
// from the runtime options containerd passes (config_path or config_body); later sources
// override earlier ones key by key. A container annotation may then choose the backend,
// where AllowedAnnotations lets it.
type Config struct {
	// Debug raises the shim's log level to debug (as containerd's --debug does).
	Debug bool `toml:"debug"`
	// Routes choose the backend by container id, image or annotation ([[route]], see
	// route.go), where no allowed annotation and no runtime option chose it.
	Routes []Route `toml:"route"`

	// Backend is the default backend name.
	Backend string `toml:"backend"`
	// StateDir is where containers keep private state.
	StateDir string `toml:"state_dir"`
	// AllowedAnnotations lists the io.lxcri.* annotations containers may use: names, or
	// prefixes ending in "*". Default none: through CRI, annotations are the pod author's.
	AllowedAnnotations []string   `toml:"allowed_annotations"`
	Crun               CrunConfig `toml:"crun"`
	LXC                LXCConfig  `toml:"lxc"`
	ZFS                ZFSConfig  `toml:"zfs"`
	// Proxmox is how the proxmox-lxc and proxmox-vm backends reach the node's PVE API.
	Proxmox ProxmoxConfig `toml:"proxmox"`
	// ShimGroup is which containers share one shim process when no annotation groups
	// them: ShimGroupContainer ("" too: a shim each, as containerd's runc shim) or
	// ShimGroupNamespace. Only the host file's counts: every container of a namespace, and
	// the shim at its exit, must see the same choice.
	ShimGroup string `toml:"shim_group"`
	// ProxmoxVM configures the proxmox-vm backend.
	ProxmoxVM ProxmoxVMConfig `toml:"proxmox-vm"`
}

// Values of Config.ShimGroup.
const (
	// ShimGroupContainer starts a shim process per container (or per annotated group).
	ShimGroupContainer = "container"
	// ShimGroupNamespace has one live shim process serve every container of a containerd
	// namespace: a container start then costs no shim process start, and the containers
	// share one shim's memory; a crash of that shim ends every container it serves.
	ShimGroupNamespace = "namespace"
)

// ZFSConfig puts the root filesystems of local containers (lxc, crun) on ZFS datasets,
// which is what checkpoint and restore need. Without a dataset, containers use the
// filesystem containerd mounts and Checkpoint is a FailedPrecondition saying what to set.
type ZFSConfig struct {
	// Dataset is the parent of every dataset lxcri makes, e.g. "tank/lxcri"; its pool must
	// exist, the dataset itself is created when missing.
	Dataset string `toml:"dataset"`
	// Portable makes a checkpoint carry a `zfs send` stream of the container's filesystem,
	// so that it restores on a host without the snapshot.
	Portable bool `toml:"portable"`
	// Retain is how many checkpoints to keep per container id (0: all); older ones are
	// freed at the next checkpoint.
	Retain int `toml:"retain"`
}

// CrunConfig configures the backend that drives a runc-compatible CLI.
type CrunConfig struct {
	// Binary is the runtime CLI: crun (default), runc, youki, or a path.
	Binary string `toml:"binary"`
	// Root is the CLI's state root (--root); default <state_dir>/<binary name>.
	Root string `toml:"root"`
	// SystemdCgroup makes the CLI use systemd cgroups.
	SystemdCgroup bool `toml:"systemd_cgroup"`
}

// LXCConfig configures the lxc backend.
type LXCConfig struct {
	// Helper is the path of lxcri-start; default: beside the shim binary.
	Helper string `toml:"helper"`
	// LogLevel is liblxc's log level (TRACE, DEBUG, INFO, WARN, ERROR).
	LogLevel string `toml:"log_level"`
}

// DefaultConfig is the configuration without any file or option.
func DefaultConfig() *Config {
	return &Config{Backend: DefaultBackend, StateDir: DefaultStateDir}
}

// LoadHostConfig reads the host-wide file (LXCRI_CONFIG or /etc/lxcri/config.toml) over the
// defaults. A missing file is not an error; a malformed one is.
func LoadHostConfig() (*Config, error) {
	c := DefaultConfig()
	path := os.Getenv(ConfigPathEnv)
	if path == "" {
		path = DefaultConfigPath
	}
	if err := c.MergeFile(path, path != DefaultConfigPath); err != nil {
		return nil, err
	}
	return c, nil
}

// MergeFile decodes the TOML file at path over c. When required is false a missing file
// is skipped.
func (c *Config) MergeFile(path string, required bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if !required {
				return nil
			}
			return fmt.Errorf("config file %s does not exist: %w", path, errdefs.ErrNotFound)
		}
		return fmt.Errorf("read config file %s: %w", path, err)
	}
	return c.Merge(path, b)
}

// Merge decodes TOML from source (a file name or "runtime options") over c.
func (c *Config) Merge(source string, body []byte) error {
	d := toml.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(c); err != nil {
		var se *toml.StrictMissingError
		if errors.As(err, &se) {
			var keys []string
			for _, e := range se.Errors {
				row, _ := e.Position()
				keys = append(keys, fmt.Sprintf("%s (line %d)", strings.Join(e.Key(), "."), row))
			}
			return fmt.Errorf("unknown key in %s: %s: %w", source, strings.Join(keys, ", "), errdefs.ErrInvalidArgument)
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return fmt.Errorf("malformed TOML in %s at line %d column %d: %s: %w", source, row, col, de.Error(), errdefs.ErrInvalidArgument)
		}
		return fmt.Errorf("invalid configuration in %s: %v: %w", source, err, errdefs.ErrInvalidArgument)
	}
	if err := c.validateAllowedAnnotations(source); err != nil {
		return err
	}
	if err := ValidateStateRoot(source+": crun.root", c.Crun.Root); err != nil {
		return err
	}
	switch c.ShimGroup {
	case "", ShimGroupContainer, ShimGroupNamespace:
	default:
		return fmt.Errorf("%s: shim_group %q: valid values are %q and %q: %w", source, c.ShimGroup, ShimGroupContainer, ShimGroupNamespace, errdefs.ErrInvalidArgument)
	}
	return c.validateRoutes(source, body)
}

// ValidateStateRoot checks a runtime CLI's state root named field ("" keeps the default):
// the CLI gets it as --root and creates folders under it, so it must be an absolute, clean
// path without NUL.
func ValidateStateRoot(field, p string) error {
	if p == "" {
		return nil
	}
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.ContainsRune(p, 0) {
		return fmt.Errorf("%s %q: must be an absolute, clean path: %w", field, p, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Clone returns an independent copy.
func (c *Config) Clone() *Config {
	cc := *c
	cc.AllowedAnnotations = append([]string(nil), c.AllowedAnnotations...)
	cc.Routes = append([]Route(nil), c.Routes...)
	return &cc
}

// ValidateBackend checks a backend name and says which names are valid.
func ValidateBackend(name string) error {
	for _, k := range KnownBackends {
		if k == name {
			return nil
		}
	}
	valid := append([]string(nil), KnownBackends...)
	sort.Strings(valid)
	return fmt.Errorf("unknown backend %q: valid backends are %s: %w", name, strings.Join(valid, ", "), errdefs.ErrInvalidArgument)
}
